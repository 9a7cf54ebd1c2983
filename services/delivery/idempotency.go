package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// doneKeyPrefix prefixes the Redis key that marks a delivery completed:
// ph:done:<msg_id>.<endpoint_id>, and ph:done:<msg_id>.<endpoint_id>.<resend_id>
// for a resend.
const doneKeyPrefix = "ph:done:"

// redisTimeout bounds each idempotency call, on top of the client's own
// timeouts.
const redisTimeout = 3 * time.Second

// idempotency remembers in Redis which deliveries have succeeded, so that a
// JetStream redelivery after a crash between the 2xx and the ack is not sent
// again.
type idempotency struct {
	rdb redis.UniversalClient
	ttl time.Duration
	// batch writes the completion records, sharing Redis round trips
	// between concurrent deliveries.
	batch *doneBatcher
}

// newIdempotency returns the records kept in rdb for ttl.
func newIdempotency(rdb redis.UniversalClient, ttl time.Duration) idempotency {
	return idempotency{rdb: rdb, ttl: ttl, batch: &doneBatcher{rdb: rdb, ttl: ttl}}
}

func doneKey(messageID, endpointID string) string {
	return doneKeyPrefix + streams.DeliveryMsgID(messageID, endpointID)
}

// deliveryDoneKey is the record of d: its message and endpoint, and for a
// resend (sent whether or not the message was delivered before) its resend
// id too.
func deliveryDoneKey(d *eventv1.Delivery) string {
	k := doneKey(d.GetMessageId(), d.GetEndpointId())
	if id := d.GetResendId(); id != "" {
		k += "." + id
	}
	return k
}

// done reports whether delivery d has succeeded.
func (i idempotency) done(ctx context.Context, d *eventv1.Delivery) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	key := deliveryDoneKey(d)
	n, err := i.rdb.Exists(ctx, key).Result()
	if err != nil {
		return false, fmt.Errorf("check %s in redis: %w", key, err)
	}
	return n > 0, nil
}

// markDone records that delivery d succeeded with attempt attemptID and,
// in the same round trip, ends the endpoint's run of failures. A resend is
// recorded under its own key and as the message's delivery to the endpoint.
func (i idempotency) markDone(ctx context.Context, d *eventv1.Delivery, attemptID string) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	return i.batch.write(ctx, d, attemptID)
}

// forget removes the record that the message was delivered to the
// endpoint. A resend whose attempt failed calls it: its retries come back
// from the schedule as ordinary deliveries of the message, which the record
// of an earlier success would otherwise stop.
func (i idempotency) forget(ctx context.Context, messageID, endpointID string) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	if err := i.rdb.Del(ctx, doneKey(messageID, endpointID)).Err(); err != nil {
		return fmt.Errorf("delete %s in redis: %w", doneKey(messageID, endpointID), err)
	}
	return nil
}
