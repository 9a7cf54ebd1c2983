package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// doneKeyPrefix prefixes the Redis key that marks a delivery completed:
// ph:done:<msg_id>.<endpoint_id>.
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
}

func doneKey(messageID, endpointID string) string {
	return doneKeyPrefix + streams.DeliveryMsgID(messageID, endpointID)
}

// done reports whether the delivery of messageID to endpointID has succeeded.
func (i idempotency) done(ctx context.Context, messageID, endpointID string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	n, err := i.rdb.Exists(ctx, doneKey(messageID, endpointID)).Result()
	if err != nil {
		return false, fmt.Errorf("check %s in redis: %w", doneKey(messageID, endpointID), err)
	}
	return n > 0, nil
}

// markDone records that the delivery succeeded with attempt attemptID and,
// in the same round trip, ends the endpoint's run of failures.
func (i idempotency) markDone(ctx context.Context, messageID, endpointID, attemptID string) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	_, err := i.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, doneKey(messageID, endpointID), attemptID, i.ttl)
		p.Del(ctx, failingKey(endpointID))
		return nil
	})
	if err != nil {
		return fmt.Errorf("set %s in redis: %w", doneKey(messageID, endpointID), err)
	}
	return nil
}
