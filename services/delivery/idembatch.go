package delivery

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Group commit of completion records.
const (
	// maxDoneBatch bounds the records written in one Redis round trip.
	maxDoneBatch = 512
	// maxDoneFlushers bounds the round trips in flight at once.
	maxDoneFlushers = 4
)

// doneBatcher writes the completion records of many deliveries in one Redis
// pipeline: a record asked for while earlier ones are being written waits
// and goes with the next round trip, so under load the round trips (and
// their system calls) are shared, while a lone record is written at once,
// with no added delay. Each caller still waits for its own record, so a
// success is in Redis before its delivery is acked, as without batching.
//
// Flushers are started on demand and end when nothing is waiting: the
// batcher needs no start or stop.
type doneBatcher struct {
	rdb redis.UniversalClient
	ttl time.Duration // of each record

	// roundTrips counts the pipelines written (for tests and debugging).
	roundTrips atomic.Int64

	mu       sync.Mutex
	pending  []*doneRequest
	flushers int
}

// doneRequest is one delivery's completion record, waiting to be written.
type doneRequest struct {
	ctx       context.Context
	d         *eventv1.Delivery
	attemptID string
	result    chan error
}

// write queues the record and waits until it is written or ctx ends.
func (b *doneBatcher) write(ctx context.Context, d *eventv1.Delivery, attemptID string) error {
	r := &doneRequest{ctx: ctx, d: d, attemptID: attemptID, result: make(chan error, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	if b.flushers < maxDoneFlushers {
		b.flushers++
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case err := <-r.result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("write completion record: %w", context.Cause(ctx))
	}
}

// flush writes waiting records, a batch per round trip, until none waits.
func (b *doneBatcher) flush() {
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxDoneBatch)
		if n == 0 {
			b.flushers--
			b.pending = nil // let a burst's backing array go
			b.mu.Unlock()
			return
		}
		batch := make([]*doneRequest, n)
		copy(batch, b.pending)
		b.pending = b.pending[n:]
		b.mu.Unlock()
		b.writeBatch(batch)
	}
}

// writeBatch writes batch in one pipeline and tells each caller its result.
// Requests whose callers gave up are left out.
func (b *doneBatcher) writeBatch(batch []*doneRequest) {
	live := batch[:0]
	for _, r := range batch {
		if r.ctx.Err() == nil {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	b.roundTrips.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	cmds := make([][]redis.Cmder, len(live))
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, r := range live {
			cmds[k] = b.queue(ctx, p, r.d, r.attemptID)
		}
		return nil
	})
	for k, r := range live {
		r.result <- doneResult(r.d, cmds[k], err)
	}
}

// queue queues on p the commands of d's completion record: the record
// (and, for a resend, the message's record too), and the end of the
// endpoint's run of failures.
func (b *doneBatcher) queue(ctx context.Context, p redis.Pipeliner, d *eventv1.Delivery, attemptID string) []redis.Cmder {
	cmds := []redis.Cmder{p.Set(ctx, deliveryDoneKey(d), attemptID, b.ttl)}
	if d.GetResendId() != "" {
		cmds = append(cmds, p.Set(ctx, doneKey(d.GetMessageId(), d.GetEndpointId()), attemptID, b.ttl))
	}
	return append(cmds, p.Del(ctx, failingKey(d.GetEndpointId())))
}

// doneResult is the outcome of one record's commands in a pipeline that
// returned pipeErr.
func doneResult(d *eventv1.Delivery, cmds []redis.Cmder, pipeErr error) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			pipeErr = err
			break
		}
	}
	if pipeErr != nil {
		return fmt.Errorf("set %s in redis: %w", deliveryDoneKey(d), pipeErr)
	}
	return nil
}
