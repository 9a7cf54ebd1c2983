package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// pinHeader carries the pin id of the pinned client on each message.
const pinHeader = "Nats-Pin-Id"

// partition is this worker's tenure of one partition, from the moment it
// acquires the partition's lease to the moment it has settled everything it
// took: it pulls the partition consumer of DELIVERIES, as the pinned client
// of its priority group, and hands each delivery to its endpoint's lane. It
// tracks every delivery it holds (by stream sequence) to keep it alive with
// InProgress and to recognise a redelivery of one it already has. A
// partition acquired again later gets a new tenure.
type partition struct {
	index    int
	consumer jetstream.Consumer
	stream   jetstream.Stream
	// loop, if set, is the pull's entry in the liveness registry, closed
	// when the pull ends.
	loop     *health.Loop
	log      *slog.Logger
	ackWait  time.Duration
	lanes    *lanes
	states   *endpointStates
	deferrer *deferrer
	// deferDelay and concurrency place deliveries put off for a full lane.
	deferDelay  time.Duration
	concurrency int
	// laneMaxWait is how long a delivery may wait in its lane's queue.
	laneMaxWait time.Duration
	// pullingHook is Hooks.Pulling, or nil.
	pullingHook func(partition int, on bool)
	// pinID is the pin id of the last message received: this worker's pin,
	// unless the pin has moved since.
	pinID atomic.Value // string

	// abort ends when the grace for attempts in flight is over (see settle).
	abort         context.Context
	abortAttempts context.CancelCauseFunc
	// cancelPull ends the pull and the lane-queue expiry (pulling).
	cancelPull context.CancelFunc
	pulling    sync.WaitGroup
	// stopKeep ends the InProgress signals (keeping).
	stopKeep context.CancelFunc
	keeping  sync.WaitGroup
	stopOnce sync.Once
	// settleOnce runs settle once; settled is closed when it is done.
	settleOnce sync.Once
	settled    chan struct{}

	mu   sync.Mutex
	held map[uint64]*job
}

func newPartition(index int, c jetstream.Consumer, s jetstream.Stream, cfg Config, log *slog.Logger, states *endpointStates, df *deferrer, deliver func(context.Context, *job)) *partition {
	p := &partition{
		index:       index,
		consumer:    c,
		stream:      s,
		log:         log.With("partition", index),
		ackWait:     cfg.AckWait,
		states:      states,
		deferrer:    df,
		deferDelay:  cfg.DeferDelay,
		concurrency: cfg.LaneConcurrency,
		laneMaxWait: cfg.LaneMaxWait,
		pullingHook: cfg.Hooks.Pulling,
		settled:     make(chan struct{}),
		held:        map[uint64]*job{},
	}
	p.abort, p.abortAttempts = context.WithCancelCause(context.Background())
	p.lanes = newLanes(cfg.LaneConcurrency, cfg.LaneQueue, func(ctx context.Context, j *job) {
		deliver(ctx, j)
		p.release(j)
	})
	return p
}

// pull receives deliveries until ctx ends, re-opening the pull after errors.
func (p *partition) pull(ctx context.Context) {
	const initialBackoff = 100 * time.Millisecond
	backoff := initialBackoff
	for {
		started := time.Now()
		err := p.pullOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > time.Minute {
			backoff = initialBackoff // it had been working
		}
		p.log.WarnContext(ctx, "pull interrupted, re-opening", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// pullOnce opens a message iterator in the delivery priority group and feeds
// the lanes until ctx ends or the iterator closes.
func (p *partition) pullOnce(ctx context.Context) error {
	it, err := p.consumer.Messages(
		jetstream.PullPriorityGroup(streams.DeliveryGroup),
		jetstream.PullExpiry(p.pullExpiry()),
	)
	if err != nil {
		return fmt.Errorf("open pull on %s: %w", streams.PartitionConsumer(p.index), err)
	}
	defer func() {
		if ctx.Err() != nil {
			p.handBackBuffered(it)
			return
		}
		it.Stop()
	}()
	failures := 0
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		switch {
		case err == nil:
			failures = 0
			p.accept(ctx, msg)
			continue
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return fmt.Errorf("pull on %s: %w", streams.PartitionConsumer(p.index), err)
		}
		// Transient: a missed heartbeat, the pin moving, a leader change. The
		// iterator issues new pull requests by itself.
		failures++
		p.log.WarnContext(ctx, "pull error", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(time.Duration(failures)*50*time.Millisecond, time.Second)):
		}
	}
}

// pullExpiry renews the pin well within the consumer's pinned TTL, so an
// idle but healthy worker keeps its partition.
func (p *partition) pullExpiry() time.Duration {
	ttl := 30 * time.Second
	if info := p.consumer.CachedInfo(); info != nil && info.Config.PinnedTTL > 0 {
		ttl = info.Config.PinnedTTL
	}
	return min(max(ttl/3, time.Second), 30*time.Second)
}

// accept decodes msg and dispatches it to its endpoint's lane, or, for a
// redelivery of a delivery still held, refreshes the held one.
func (p *partition) accept(ctx context.Context, msg jetstream.Msg) {
	if pin := msg.Headers().Get(pinHeader); pin != "" {
		p.pinID.Store(pin)
	}
	meta, err := msg.Metadata()
	if err != nil {
		p.log.ErrorContext(ctx, "message without JetStream metadata, ignoring", "subject", msg.Subject(), "err", err)
		return
	}
	now := time.Now()
	p.mu.Lock()
	if j, ok := p.held[meta.Sequence.Stream]; ok && !j.isSettled() {
		j.redelivered(msg, now)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()

	d := &eventv1.Delivery{}
	if err := proto.Unmarshal(msg.Data(), d); err != nil || d.GetEndpointId() == "" || d.GetMessageId() == "" {
		p.log.ErrorContext(ctx, "undecodable delivery, terminating it", "subject", msg.Subject(), "seq", meta.Sequence.Stream, "err", err)
		if err := msg.TermWithReason("undecodable delivery"); err != nil {
			p.log.ErrorContext(ctx, "terminate undecodable delivery", "err", err)
		}
		return
	}
	j := newJob(p.abort, msg, d, meta, now)
	p.mu.Lock()
	p.held[j.seq] = j
	p.mu.Unlock()
	// Attempts are not cancelled with the pull: one that has started
	// finishes within its timeout and is settled, also at shutdown.
	ctx = context.WithoutCancel(ctx)
	ep := d.GetEndpointId()
	if d.GetScheduleCount() == 0 && d.GetResendId() == "" { // a resend goes now
		if until, failing := p.states.failingUntil(ep, now); failing {
			p.deferrer.submit(ctx, deferral{p: p, j: j, due: until, why: whyFailing})
			return
		}
	}
	switch p.lanes.dispatch(ctx, ep, j) {
	case full:
		// The endpoint cannot keep up: the delivery leaves the partition
		// for the schedule, behind those put off before it.
		due := p.states.deferSlot(ep, now, p.deferDelay, p.concurrency)
		p.deferrer.submit(ctx, deferral{p: p, j: j, due: due, why: whyLaneFull})
	case refused:
		p.handBack(j) // stopping: to the next worker, at once
	}
}

// handBackWait bounds the drain of a pull at hand-back.
const handBackWait = settleTimeout

// handBackBuffered stops pulling and nakks, without delay, every delivery
// the iterator has received but not yet returned, so the partition's next
// worker gets them at once instead of after the ack wait. The drain ends
// when the server has confirmed the unsubscribe (a flush) and the buffer
// is empty: it waits for that, up to handBackWait, as what arrives before
// the confirmation is this worker's to hand back too. (It once stopped at
// the first second without a message, which a slow flush outlasts.)
func (p *partition) handBackBuffered(it jetstream.MessagesContext) {
	it.Drain()
	deadline := time.Now().Add(handBackWait)
	n := 0
	for {
		left := time.Until(deadline)
		if left <= 0 {
			p.log.Warn("pull not drained in time; deliveries it still receives come back after the ack wait", "wait", handBackWait, "handed_back", n)
			break
		}
		msg, err := it.Next(jetstream.NextMaxWait(left))
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break // drained: the buffer is empty
		}
		if err != nil {
			continue // a timeout (the deadline) or a status message
		}
		if err := msg.Nak(); err != nil {
			p.log.Warn("hand back a buffered delivery", "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		p.log.Info("handed back buffered deliveries", "count", n)
	}
}

// settleAfterAbort bounds the wait for attempts cut short at the end of the
// grace to be recorded, scheduled and acked.
const settleAfterAbort = 2*settleTimeout + redisTimeout

// start pulls the partition until stopPulling, and keeps the deliveries it
// holds alive until settle.
func (p *partition) start(ctx context.Context) {
	pullCtx, cancelPull := context.WithCancel(ctx)
	keepCtx, stopKeep := context.WithCancel(context.WithoutCancel(ctx))
	p.cancelPull, p.stopKeep = cancelPull, stopKeep
	if p.pullingHook != nil {
		p.pullingHook(p.index, true)
	}
	p.pulling.Add(2)
	go func() {
		defer p.pulling.Done()
		p.pull(pullCtx)
	}()
	go func() {
		defer p.pulling.Done()
		p.expireQueued(pullCtx, p.laneMaxWait)
	}()
	p.keeping.Add(1)
	go func() {
		defer p.keeping.Done()
		p.keepAlive(keepCtx)
	}()
}

// stopPulling ends the pull, hands back (nakks without delay) the
// deliveries buffered by the pull and those waiting in lanes, and stops the
// lanes from starting more. Attempts in flight go on (see settle). Calling
// it again does nothing.
func (p *partition) stopPulling() {
	p.stopOnce.Do(func() {
		p.cancelPull()
		p.pulling.Wait()
		p.loop.Close()
		if p.pullingHook != nil {
			p.pullingHook(p.index, false)
		}
		p.stop()
	})
}

// settle waits, after stopPulling, until every delivery the partition holds
// is settled: attempts in flight get up to grace to finish; those still
// running then are cut short (recorded as timeouts and retried on the
// schedule like any failed attempt) and waited for a little longer. It then
// stops the InProgress signals. Concurrent and later calls wait for the
// first.
func (p *partition) settle(grace time.Duration) {
	p.settleOnce.Do(func() {
		defer close(p.settled)
		if !p.waitIdle(grace) {
			p.log.Warn("attempts still in flight after the grace: cutting them short, to be recorded as timeouts and retried",
				"grace", grace, "held", p.heldCount())
			p.abortAttempts(errGraceOver)
			if !p.waitIdle(settleAfterAbort) {
				p.log.Error("deliveries still unsettled after cutting their attempts short; JetStream redelivers them after the ack wait",
					"held", p.heldCount())
			}
		}
		p.stopKeep()
		p.keeping.Wait()
	})
	<-p.settled
}

// waitIdle waits up to d until the partition holds no delivery, and reports
// whether it does not.
func (p *partition) waitIdle(d time.Duration) bool {
	const poll = 10 * time.Millisecond
	deadline := time.Now().Add(d)
	for p.heldCount() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
	}
	return true
}

// heldCount is the number of deliveries the partition holds: waiting in a
// lane, in flight or being put off.
func (p *partition) heldCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}
