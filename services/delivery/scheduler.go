package delivery

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/natstrace"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

const (
	// fetchConcurrency bounds the event reads in flight for one batch.
	fetchConcurrency = 32
	// releaseTimeout bounds the handling of one claimed batch; it is well
	// within the shortest claim lease that makes sense in production.
	releaseTimeout = 10 * time.Second
	// maxSchedulerBackoff caps the wait after the schedule was unreachable.
	maxSchedulerBackoff = 2 * time.Second
	// batchesPerPass bounds the claims from one partition in one pass.
	batchesPerPass = 4
	// flagRateReserved marks an item that holds a rate-limit slot.
	flagRateReserved uint8 = 1
)

// scheduler returns due deliveries from the Redis schedule to the stream.
// Every worker runs one over every partition: a claim leases items
// atomically, so workers never return the same item twice within a lease,
// and the schedule keeps moving as long as any worker runs — even for
// partitions no worker is pulling at the moment. A claimed item is read back
// from EVENTS by sequence and published to DELIVERIES as a Delivery whose
// attempt is the attempts already made, with a Nats-Msg-Id unique to that
// return, so that a worker that dies between publishing and Done — whose
// items are claimed again after the lease — stores nothing twice. Only then
// is it Done.
type scheduler struct {
	cfg        Config
	log        *slog.Logger
	queue      *retryq.Queue
	events     eventSource
	js         jetstream.JetStream
	tracer     trace.Tracer
	partitions int
	wake       chan struct{}
}

func newScheduler(cfg Config, log *slog.Logger, queue *retryq.Queue, events eventSource, js jetstream.JetStream, tracer trace.Tracer) *scheduler {
	return &scheduler{
		tracer:     tracer,
		cfg:        cfg,
		log:        log.With("component", "scheduler"),
		queue:      queue,
		events:     events,
		js:         js,
		partitions: queue.Partitions(),
		wake:       make(chan struct{}, 1),
	}
}

// kick tells the scheduler that an item is due at due, so that it looks
// earlier than its next poll if need be.
func (s *scheduler) kick(due time.Time) {
	if time.Until(due) >= s.cfg.PollInterval {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run returns due items until ctx ends. A batch being returned when ctx
// ends is finished first; claimed items not returned come due again after
// their lease.
func (s *scheduler) run(ctx context.Context, loop *health.Loop) {
	backoff := 50 * time.Millisecond
	failing := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
		}
		loop.Beat()
		wait := s.cfg.PollInterval
		next, err := s.pass(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				s.log.WarnContext(ctx, "retry schedule unreachable; retrying", "err", err)
			}
			failing = true
			wait = backoff
			backoff = min(2*backoff, maxSchedulerBackoff)
		default:
			if failing {
				s.log.InfoContext(ctx, "retry schedule reachable again")
			}
			failing = false
			backoff = 50 * time.Millisecond
			if !next.IsZero() {
				wait = min(wait, max(time.Until(next), 0))
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// pass looks at every partition's earliest item (one round trip), returns
// the due items of those that have some, and reports the earliest due time
// still ahead (now, when a partition has more due than one pass takes).
// Passes start at a random partition, so that workers spread over the
// partitions rather than contend for the same one.
func (s *scheduler) pass(ctx context.Context) (time.Time, error) {
	dues, err := s.queue.NextDue(ctx)
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	var earliest time.Time
	start := rand.IntN(len(dues))
	for i := range dues {
		p := (start + i) % len(dues)
		due := dues[p]
		if due.IsZero() {
			continue
		}
		if due.After(now) {
			earliest = minTime(earliest, due)
			continue
		}
		next, err := s.drain(ctx, p)
		if err != nil {
			return time.Time{}, err
		}
		earliest = minTime(earliest, next)
	}
	return earliest, nil
}

// drain claims up to batchesPerPass batches of partition p's due items,
// returns them to the stream, and reports the partition's earliest due time
// left (now when it still has due items), so one large backlog does not
// hold up the other partitions.
func (s *scheduler) drain(ctx context.Context, p int) (time.Time, error) {
	for range batchesPerPass {
		now := time.Now()
		res, err := s.queue.Claim(ctx, p, now, s.cfg.ClaimBatch, s.cfg.ClaimLease)
		if err != nil {
			return time.Time{}, err
		}
		if res.Malformed > 0 {
			s.log.ErrorContext(ctx, "malformed schedule items removed", "partition", p, "count", res.Malformed)
		}
		if len(res.Items) > 0 {
			s.release(ctx, now, res.Items)
		}
		if len(res.Items) < s.cfg.ClaimBatch || ctx.Err() != nil {
			return res.NextDue, nil
		}
	}
	return time.Now(), nil
}

// fetched is an event read back for a batch.
type fetched struct {
	event  *eventv1.Event
	header nats.Header
	err    error
}

// release publishes claimed items to DELIVERIES and marks those stored (or
// whose event is gone) Done. Items not published stay leased and come back
// after the lease.
func (s *scheduler) release(ctx context.Context, claimedAt time.Time, items []retryq.Claimed) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	events := s.fetch(ctx, items)
	type pending struct {
		item   retryq.Claimed
		future jetstream.PubAckFuture
		span   trace.Span // the publish's, or nil
	}
	var (
		done     []retryq.Claimed
		waiting  []pending
		failed   int
		lastErr  error
		maxLate  time.Duration
		lateness time.Duration
	)
	for _, c := range items {
		f := events[c.Seq]
		switch {
		case errors.Is(f.err, errEventGone):
			s.log.WarnContext(ctx, "scheduled delivery dropped: its event is gone", "seq", c.Seq, "endpoint_id", c.Endpoint, "attempt", c.Attempt, "err", f.err)
			done = append(done, c)
			continue
		case f.err != nil:
			failed, lastErr = failed+1, f.err
			continue
		}
		msg, id, err := deliveryMsg(c, f, s.partitions)
		if err != nil {
			failed, lastErr = failed+1, err
			continue
		}
		span := s.startReturn(ctx, c, f, msg, id)
		future, err := s.js.PublishMsgAsync(msg, jetstream.WithMsgID(id))
		if err != nil {
			endSpan(span, err)
			failed, lastErr = failed+1, err
			continue
		}
		waiting = append(waiting, pending{item: c, future: future, span: span})
		late := claimedAt.Sub(c.Due)
		lateness += late
		maxLate = max(maxLate, late)
	}
	for _, w := range waiting {
		select {
		case <-w.future.Ok():
			done = append(done, w.item)
			endSpan(w.span, nil)
		case err := <-w.future.Err():
			failed, lastErr = failed+1, err
			endSpan(w.span, err)
		case <-ctx.Done():
			failed, lastErr = failed+1, ctx.Err()
			endSpan(w.span, ctx.Err())
		}
	}
	if err := s.queue.Done(ctx, done...); err != nil {
		// Each comes back after its lease and is published again with the
		// same Nats-Msg-Id, which the stream drops within its window.
		s.log.WarnContext(ctx, "returned deliveries not marked done in the schedule", "count", len(done), "err", err)
	}
	if failed > 0 {
		s.log.WarnContext(ctx, "scheduled deliveries not returned; they come back after the lease", "count", failed, "lease", s.cfg.ClaimLease, "err", lastErr)
	}
	if len(waiting) > 0 {
		s.log.DebugContext(ctx, "scheduled deliveries returned", "count", len(waiting),
			"mean_lateness", lateness/time.Duration(len(waiting)), "max_lateness", maxLate)
	}
}

// fetch reads the events of items, each sequence once, a few at a time.
func (s *scheduler) fetch(ctx context.Context, items []retryq.Claimed) map[uint64]fetched {
	out := make(map[uint64]fetched, len(items))
	seen := make(map[uint64]bool, len(items))
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, fetchConcurrency)
	)
	for _, c := range items {
		if seen[c.Seq] {
			continue
		}
		seen[c.Seq] = true
		wg.Add(1)
		sem <- struct{}{}
		go func(seq uint64) {
			defer wg.Done()
			defer func() { <-sem }()
			ev, h, err := s.events.get(ctx, seq)
			mu.Lock()
			out[seq] = fetched{event: ev, header: h, err: err}
			mu.Unlock()
		}(c.Seq)
	}
	wg.Wait()
	return out
}

// deliveryMsg is the DELIVERIES message returning claimed item c, whose
// event is f, and its Nats-Msg-Id. It carries the event's trace context, so
// the attempt joins the event's trace.
func deliveryMsg(c retryq.Claimed, f fetched, partitions int) (*nats.Msg, string, error) {
	ev := f.event
	d := &eventv1.Delivery{
		MessageId:     ev.GetMessageId(),
		TenantId:      ev.GetTenantId(),
		EndpointId:    c.Endpoint,
		EventType:     ev.GetEventType(),
		Payload:       ev.GetPayload(),
		EventSequence: c.Seq,
		AcceptedAt:    ev.GetAcceptedAt(),
		Attempt:       c.Attempt,
		ScheduleCount: c.Hops,
		RateReserved:  c.Flags&flagRateReserved != 0,
		ResendId:      c.ResendID,
	}
	data, err := proto.Marshal(d)
	if err != nil {
		return nil, "", err
	}
	msg := &nats.Msg{Subject: streams.DeliverySubject(c.Endpoint, partitions), Data: data, Header: nats.Header{}}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := f.header.Get(k); v != "" {
			msg.Header.Set(k, v)
		}
	}
	return msg, streams.ScheduledDeliveryMsgID(d.GetMessageId(), d.GetEndpointId(), d.GetResendId(), d.GetAttempt(), d.GetScheduleCount()), nil
}

// startReturn starts the producer span of returning c, whose event is f, as
// msg (Nats-Msg-Id id), when the event's trace is sampled: a child of the
// event's trace context, linked to the attempt that scheduled c. msg then
// carries this span's context, and the link in natsx.LinkHeader, so the
// next attempt's span is in the event's trace and linked to the last one.
// It returns nil, and msg keeps the event's trace context, when unsampled.
func (s *scheduler) startReturn(ctx context.Context, c retryq.Claimed, f fetched, msg *nats.Msg, id string) trace.Span {
	ectx := natsx.Extract(ctx, f.header)
	ev := trace.SpanContextFromContext(ectx)
	if !ev.IsSampled() {
		return nil
	}
	link := returnLink(c, ev.TraceID())
	opts := []trace.SpanStartOption{}
	if link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
		natsx.InjectLink(msg.Header, link)
	}
	sctx, span := natstrace.StartPublish(ectx, s.tracer, returnSpanName, msg.Subject, id, opts...)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("pulsehooks.tenant_id", f.event.GetTenantId()),
			attribute.String("pulsehooks.endpoint_id", c.Endpoint),
			attribute.String("pulsehooks.message_id", f.event.GetMessageId()),
			attribute.Int("pulsehooks.attempt", int(c.Attempt)),
			attribute.String("pulsehooks.scheduled_due", c.Due.UTC().Format(time.RFC3339Nano)),
		)
	}
	natsx.Inject(sctx, msg)
	return span
}

// endSpan ends span, if any, with err.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "not returned")
	}
	span.End()
}

// minTime is the earlier of a and b, where zero means none.
func minTime(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}
