package delivery

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
// again, and with which attempt, so that the redelivery can store that
// attempt's record if it was not stored before.
type idempotency struct {
	rdb redis.UniversalClient
	ttl time.Duration
	// batch sends the completion checks and records, sharing Redis round
	// trips between concurrent deliveries.
	batch *pipeBatcher
}

// newIdempotency returns the records kept in rdb for ttl.
func newIdempotency(rdb redis.UniversalClient, ttl time.Duration) idempotency {
	return idempotency{rdb: rdb, ttl: ttl, batch: &pipeBatcher{rdb: rdb}}
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

// completion is what a completion record keeps of the successful attempt:
// enough to store its attempt record again (without the request and
// response headers and body) should the worker that made it have failed to.
type completion struct {
	attemptID string
	attempt   uint32 // the attempt's number; 0 in records older than this field
	started   time.Time
	duration  time.Duration
	status    int32
}

// completionOf is the completion of successful attempt a.
func completionOf(a *eventv1.Attempt) completion {
	return completion{
		attemptID: a.GetId(),
		attempt:   a.GetAttempt(),
		started:   a.GetStartedAt().AsTime(),
		duration:  time.Duration(a.GetDurationUs()) * time.Microsecond,
		status:    a.GetStatusCode(),
	}
}

// String is the record's value: "<attempt id> <attempt> <started, Unix µs>
// <duration µs> <status>", about 55 bytes.
func (c completion) String() string {
	return fmt.Sprintf("%s %d %d %d %d", c.attemptID, c.attempt, c.started.UnixMicro(), c.duration.Microseconds(), c.status)
}

// parseCompletion reads a record's value; a value of older workers is the
// attempt id alone.
func parseCompletion(v string) completion {
	f := strings.Fields(v)
	if len(f) == 0 {
		return completion{}
	}
	c := completion{attemptID: f[0]}
	if len(f) != 5 {
		return c
	}
	n, err1 := strconv.ParseUint(f[1], 10, 32)
	started, err2 := strconv.ParseInt(f[2], 10, 64)
	dur, err3 := strconv.ParseInt(f[3], 10, 64)
	status, err4 := strconv.ParseInt(f[4], 10, 32)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return c
	}
	c.attempt, c.started, c.duration, c.status = uint32(n), time.UnixMicro(started).UTC(), time.Duration(dur)*time.Microsecond, int32(status)
	return c
}

// done reports whether delivery d has succeeded, and with which attempt.
// Concurrent checks share round trips.
func (i idempotency) done(ctx context.Context, d *eventv1.Delivery) (completion, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	key := deliveryDoneKey(d)
	cmds, err := i.batch.do(ctx, func(ctx context.Context, p redis.Pipeliner) []redis.Cmder {
		return []redis.Cmder{p.Get(ctx, key)}
	})
	if err == nil {
		err = firstErr(cmds)
	}
	if err != nil {
		return completion{}, false, fmt.Errorf("check %s in redis: %w", key, err)
	}
	v, err := cmds[0].(*redis.StringCmd).Result()
	if err == redis.Nil {
		return completion{}, false, nil
	}
	return parseCompletion(v), true, nil
}

// markDone records that delivery d succeeded with attempt a and, in the
// same round trip, ends the endpoint's run of failures. A resend is
// recorded under its own key and as the message's delivery to the endpoint.
func (i idempotency) markDone(ctx context.Context, d *eventv1.Delivery, a *eventv1.Attempt) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	v := completionOf(a).String()
	cmds, err := i.batch.do(ctx, func(ctx context.Context, p redis.Pipeliner) []redis.Cmder {
		cmds := []redis.Cmder{p.Set(ctx, deliveryDoneKey(d), v, i.ttl)}
		if d.GetResendId() != "" {
			cmds = append(cmds, p.Set(ctx, doneKey(d.GetMessageId(), d.GetEndpointId()), v, i.ttl))
		}
		return append(cmds, p.Del(ctx, failingKey(d.GetEndpointId())))
	})
	if err == nil {
		err = firstErr(cmds)
	}
	if err != nil {
		return fmt.Errorf("set %s in redis: %w", deliveryDoneKey(d), err)
	}
	return nil
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
