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

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// pinHeader carries the pin id of the pinned client on each message.
const pinHeader = "Nats-Pin-Id"

// partition pulls one partition consumer of DELIVERIES, as the pinned
// client of its priority group, and hands each delivery to its endpoint's
// lane. It tracks every delivery it holds (by stream sequence) to keep it
// alive with InProgress and to recognise a redelivery of one it already has.
type partition struct {
	index    int
	consumer jetstream.Consumer
	stream   jetstream.Stream
	log      *slog.Logger
	ackWait  time.Duration
	lanes    *lanes
	states   *endpointStates
	deferrer *deferrer
	// deferDelay and concurrency place deliveries put off for a full lane.
	deferDelay  time.Duration
	concurrency int
	// pinID is the pin id of the last message received: this worker's pin,
	// unless the pin has moved since.
	pinID atomic.Value // string

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
		held:        map[uint64]*job{},
	}
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
	j := newJob(msg, d, meta, now)
	p.mu.Lock()
	p.held[j.seq] = j
	p.mu.Unlock()
	// Attempts are not cancelled with the pull: one that has started
	// finishes within its timeout and is settled, also at shutdown.
	ctx = context.WithoutCancel(ctx)
	ep := d.GetEndpointId()
	if d.GetScheduleCount() == 0 {
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

// handBackBuffered stops pulling and nakks, without delay, every delivery
// the iterator has received but not yet returned, so the partition's next
// worker gets them at once instead of after the ack wait.
func (p *partition) handBackBuffered(it jetstream.MessagesContext) {
	it.Drain()
	n := 0
	for {
		msg, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			break // ErrMsgIteratorClosed once the buffer is empty
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
