package delivery

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Group commit of completion records and checks.
const (
	// maxBatch bounds the requests sent in one Redis round trip.
	maxBatch = 512
	// maxFlushers bounds the round trips in flight at once.
	maxFlushers = 4
)

// pipeBatcher sends the Redis commands of many concurrent deliveries in one
// pipeline — completion checks (GET) and completion records (SET) alike: a
// request made while earlier ones are in flight waits and goes with the
// next round trip, so under load the round trips (and their system calls)
// are shared, while a lone request is sent at once, with no added delay.
// Each caller still waits for its own commands' results, so a success is in
// Redis before its delivery is acked, and a check is answered before its
// delivery is sent, as without batching.
//
// Flushers are started on demand and end when nothing is waiting: the
// batcher needs no start or stop.
type pipeBatcher struct {
	rdb redis.UniversalClient

	// roundTrips counts the pipelines sent (for tests and debugging).
	roundTrips atomic.Int64

	mu       sync.Mutex
	pending  []*pipeRequest
	flushers int
}

// pipeRequest is one caller's commands, waiting to be sent.
type pipeRequest struct {
	ctx   context.Context
	queue func(ctx context.Context, p redis.Pipeliner) []redis.Cmder
	cmds  []redis.Cmder
	done  chan struct{}
}

// do queues the commands queue adds and waits until they have been run (or
// ctx ends); it returns them, each with its own result or error.
func (b *pipeBatcher) do(ctx context.Context, queue func(ctx context.Context, p redis.Pipeliner) []redis.Cmder) ([]redis.Cmder, error) {
	r := &pipeRequest{ctx: ctx, queue: queue, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	if b.flushers < maxFlushers {
		b.flushers++
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.cmds, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("redis pipeline: %w", context.Cause(ctx))
	}
}

// flush sends waiting requests, a batch per round trip, until none waits.
func (b *pipeBatcher) flush() {
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxBatch)
		if n == 0 {
			b.flushers--
			b.pending = nil // let a burst's backing array go
			b.mu.Unlock()
			return
		}
		batch := make([]*pipeRequest, n)
		copy(batch, b.pending)
		b.pending = b.pending[n:]
		b.mu.Unlock()
		b.send(batch)
	}
}

// send runs batch in one pipeline and hands each caller its commands.
// Requests whose callers gave up are left out. A failed round trip sets the
// error on every command (go-redis does so), so each caller reads its own
// outcome from its commands alone.
func (b *pipeBatcher) send(batch []*pipeRequest) {
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
	_, _ = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range live {
			r.cmds = r.queue(ctx, p)
		}
		return nil
	})
	for _, r := range live {
		close(r.done)
	}
}

// firstErr is the first error among cmds, redis.Nil (a missing key) aside.
func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && err != redis.Nil {
			return err
		}
	}
	return nil
}
