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
// The callers are the flushers: a caller that finds fewer than maxFlushers
// round trips in flight sends the waiting requests itself, on its own
// goroutine, until its own have been sent (a goroutine per round trip cost
// a start, two wake-ups and a stack grown anew through go-redis each time).
// A caller that leaves while requests still wait hands them to a goroutine,
// so none is stranded. The batcher needs no start or stop.
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
	flusher := b.flushers < maxFlushers
	if flusher {
		b.flushers++
	}
	b.mu.Unlock()
	if flusher {
		b.flushUntil(r)
	}
	select {
	case <-r.done:
		return r.cmds, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("redis pipeline: %w", context.Cause(ctx))
	}
}

// flushUntil sends waiting requests, a batch per round trip, until own has
// been sent (by this caller or, in its batch, by another flusher), its
// caller has given up (it is then left out of any batch) or nothing waits,
// and gives up its place as a flusher; requests still waiting then go on in
// a goroutine.
func (b *pipeBatcher) flushUntil(own *pipeRequest) {
	for {
		batch, ok := b.next()
		if !ok {
			return // nothing waits: own was sent or dropped by an earlier batch
		}
		b.send(batch)
		if isClosed(own.done) || own.ctx.Err() != nil {
			b.mu.Lock()
			if len(b.pending) == 0 {
				b.flushers--
				b.pending = nil // let a burst's backing array go
				b.mu.Unlock()
				return
			}
			b.mu.Unlock()
			go b.flush() // the place as a flusher goes with it
			return
		}
	}
}

// next takes the next batch off the queue, or, when nothing waits, gives
// up the caller's place as a flusher and reports false.
func (b *pipeBatcher) next() ([]*pipeRequest, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(b.pending), maxBatch)
	if n == 0 {
		b.flushers--
		b.pending = nil // let a burst's backing array go
		return nil, false
	}
	batch := make([]*pipeRequest, n)
	copy(batch, b.pending)
	b.pending = b.pending[n:]
	return batch, true
}

// flush sends waiting requests, a batch per round trip, until none waits.
func (b *pipeBatcher) flush() {
	for {
		batch, ok := b.next()
		if !ok {
			return
		}
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

// isClosed reports whether c is closed.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
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
