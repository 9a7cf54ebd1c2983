package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/lazylog"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

const (
	// unknownEndpointRetry is how soon a delivery for an endpoint not yet in
	// the view is tried again.
	unknownEndpointRetry = time.Second
	// settleTimeout bounds the wait for the server to confirm an ack, and
	// the release of a partition's pin and lease.
	settleTimeout = 5 * time.Second
)

// endpointSource looks endpoints up without a network call (a
// configwatch.View).
type endpointSource interface {
	Endpoint(id string) (*configv1.Endpoint, bool)
}

// deliverer carries one delivery through: endpoint lookup, the failing
// endpoint check, idempotency check, rate limit, the HTTP attempt, the Redis
// record of a success, the attempt record, then the ack (success, or nothing
// to send) or the retry schedule (failure).
type deliverer struct {
	cfg       Config
	log       *slog.Logger
	tracer    trace.Tracer
	endpoints endpointSource
	idem      idempotency
	sender    *sender
	recorder  recorder
	queue     *retryq.Queue
	// kick tells the scheduler an item is due at the given time.
	kick    func(time.Time)
	backoff backoff
	states  *endpointStates
	limiter limiter
	streaks streaks
	config  configv1.ConfigServiceClient
	ops     opEvents
	// inFlight holds a token per attempt in flight (Config.MaxInFlight).
	inFlight chan struct{}
	meters   *meters
}

// deliver runs j to the end. ctx is not cancelled at shutdown: an attempt
// that has started finishes within its timeout, and is then settled.
func (dl *deliverer) deliver(ctx context.Context, j *job) {
	d := j.delivery
	n := d.GetAttempt() + 1 // the attempt about to be made
	msg := j.current()
	ctx = natsx.Extract(ctx, msg.Headers())
	ctx, span := dl.tracer.Start(ctx, "delivery", consumerSpanOptions(ctx, d, msg)...)
	defer span.End()
	// Attributes cost allocations on every delivery, and most deliveries
	// use none: unsampled spans (the default without an exporter) drop
	// them, and a successful delivery writes no log record at info level.
	// So span attributes are set only on recorded spans, and the log's are
	// rendered only into records actually written (lazylog).
	recording := span.IsRecording()
	if recording {
		span.SetAttributes(
			attribute.String("pulsehooks.tenant_id", d.GetTenantId()),
			attribute.String("pulsehooks.endpoint_id", d.GetEndpointId()),
			attribute.String("pulsehooks.message_id", d.GetMessageId()),
			attribute.String("pulsehooks.event_type", d.GetEventType()),
			attribute.Int("pulsehooks.attempt", int(n)),
		)
		span.SetAttributes(processAttrs(msg)...)
	}
	attrs := []slog.Attr{
		slog.String("tenant_id", d.GetTenantId()), slog.String("endpoint_id", d.GetEndpointId()),
		slog.String("message_id", d.GetMessageId()), slog.String("event_type", d.GetEventType()),
		slog.Uint64("attempt", uint64(n)),
	}
	if id := d.GetResendId(); id != "" {
		attrs = append(attrs, slog.String("resend_id", id))
		if recording {
			span.SetAttributes(attribute.String("pulsehooks.resend_id", id))
		}
	}
	log := lazylog.With(dl.log, attrs...)

	ep, ok := dl.endpoints.Endpoint(d.GetEndpointId())
	switch {
	case !ok:
		dl.unknownEndpoint(ctx, log, j)
		return
	case ep.GetTenantId() != d.GetTenantId():
		log.ErrorContext(ctx, "endpoint belongs to another tenant, dropping delivery", "endpoint_tenant_id", ep.GetTenantId())
		dl.ack(ctx, log, j)
		return
	case !ep.GetEnabled() || dl.states.disabledAhead(ep.GetId(), ep.GetRevision()):
		log.InfoContext(ctx, "endpoint disabled, dropping delivery")
		dl.dropped(ctx, log, j, "endpoint disabled")
		return
	}
	now := time.Now()
	if d.GetScheduleCount() == 0 && d.GetResendId() == "" {
		// A resend is attempted now, whatever the endpoint's state.
		// A new delivery for an endpoint whose last attempts failed waits
		// for the earliest pending retry, rather than take a slot now.
		if until, failing := dl.states.failingUntil(ep.GetId(), now); failing {
			dl.putOff(ctx, log, j, until, whyFailing, false)
			return
		}
	}

	// Every delivery is checked, the first JetStream delivery of one straight
	// from fanout too: a crashed nats-server can roll its consumer state
	// back and deliver again, as if for the first time, deliveries that were
	// sent and acked (see "The completion check" in docs/ARCHITECTURE.md).
	c, done, err := dl.idem.done(ctx, d)
	if err != nil {
		// Without the check a redelivery after a crash could be sent
		// twice; waiting loses nothing, since the delivery stays in the
		// stream.
		log.ErrorContext(ctx, "idempotency check failed, not sending now", "err", err, "retry_in", dl.cfg.RetryDelay)
		span.SetStatus(codes.Error, "idempotency check failed")
		dl.nak(ctx, log, j, dl.cfg.RetryDelay)
		return
	}
	if done {
		log.InfoContext(ctx, "delivery already completed, acking without sending", "attempt_id", c.attemptID)
		if !dl.restore(ctx, log, d, ep, c) {
			dl.leave(ctx, log, j)
			return
		}
		dl.ack(ctx, log, j)
		return
	}
	if !dl.waitRateLimit(ctx, log, j, ep, now) {
		return
	}

	dl.inFlight <- struct{}{}
	if j.abort.Err() != nil {
		// The partition's grace ended before the attempt could start:
		// nothing was sent, so the delivery goes back to the stream.
		<-dl.inFlight
		log.InfoContext(ctx, "grace over before the attempt started, handing the delivery back")
		dl.nak(ctx, log, j, 0)
		return
	}
	r, err := dl.sender.send(ctx, j.abort, ep, d)
	<-dl.inFlight
	if err != nil {
		log.ErrorContext(ctx, "cannot make the request, not sending now", "err", err, "retry_in", dl.cfg.RetryDelay)
		span.SetStatus(codes.Error, "cannot make the request")
		dl.nak(ctx, log, j, dl.cfg.RetryDelay)
		return
	}
	dl.states.observe(ep.GetId(), time.Now(), r.duration)
	dl.meters.attempt(ctx, d, r, time.Now())
	if len(r.skipped) > 0 {
		log.WarnContext(ctx, "custom headers not sent: reserved or malformed", "headers", r.skipped)
	}
	a := newAttempt(ctx, d, ep, n, r)
	if recording {
		span.SetAttributes(attribute.String("pulsehooks.outcome", a.GetOutcome().String()), attribute.String("pulsehooks.attempt_id", a.GetId()))
		if r.status != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", r.status))
		}
	}
	if r.outcome != eventv1.Outcome_OUTCOME_SUCCESS {
		span.SetStatus(codes.Error, a.GetOutcome().String())
		// One line per failed attempt (none per success): the outcome
		// without the request URL, whose query may hold a secret.
		log.InfoContext(ctx, "attempt failed", "outcome", a.GetOutcome().String(), "status", r.status,
			"err", redactURLError(r.err), "duration", r.duration)
		if d.GetResendId() != "" {
			// The retries return without the resend id: let them through
			// even though the message was delivered before.
			if err := dl.idem.forget(ctx, d.GetMessageId(), d.GetEndpointId()); err != nil {
				log.WarnContext(ctx, "resend failed and its retries may be skipped: cannot clear the earlier delivery record", "err", err)
			}
		}
		dl.failed(ctx, log, j, ep, n, r, a)
		return
	}

	// Remember the success before anything else can fail, so that a crash
	// before the ack does not send the webhook again. If Redis refuses, ack
	// all the same: the receiver has the webhook, and nakking would resend
	// it for certain, whereas acking leaves only a crash in the next moments
	// before the ack as a chance of a duplicate (which the webhook-id lets
	// receivers detect).
	a.State = eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED
	if err := dl.idem.markDone(ctx, d, a); err != nil {
		log.ErrorContext(ctx, "delivered, but the idempotency record failed; acking anyway", "err", err)
	}
	dl.states.succeeded(ep.GetId(), time.Now())
	if !dl.record(ctx, log, a) {
		dl.leave(ctx, log, j)
		return
	}
	// Every attempt is in the ATTEMPTS stream; per-delivery log lines would
	// cost a write per delivery at info level, so they are debug.
	log.DebugContext(ctx, "delivered", "status", r.status, "duration", r.duration)
	if n > uint32(dl.cfg.FailingAfter) {
		dl.ops.publish(ctx, attemptEvent(streams.OpAttemptRecovered, a, fmt.Sprintf("delivered at attempt %d", n)))
	}
	if h := dl.cfg.Hooks.AfterSuccess; h != nil {
		h(ctx, d.GetMessageId(), d.GetEndpointId())
	}
	dl.ack(ctx, log, j)
}

// waitRateLimit takes a slot of ep's rate limit for j, unless it holds one
// already, and reports whether to send now. A slot within
// maxInlineRateWait is waited for here; a later one puts the delivery off
// to the schedule, due at its slot. If Redis cannot be asked, the delivery
// is nakked.
func (dl *deliverer) waitRateLimit(ctx context.Context, log *slog.Logger, j *job, ep *configv1.Endpoint, now time.Time) bool {
	if ep.GetRateLimit() == 0 || j.delivery.GetRateReserved() {
		return true
	}
	wait, err := dl.limiter.reserve(ctx, ep.GetId(), ep.GetRateLimit(), now)
	switch {
	case err != nil:
		log.ErrorContext(ctx, "rate limiter unreachable, not sending now", "err", err, "retry_in", dl.cfg.RetryDelay)
		dl.nak(ctx, log, j, dl.cfg.RetryDelay)
		return false
	case wait > maxInlineRateWait:
		dl.putOff(ctx, log, j, now.Add(wait), whyRateLimited, true)
		return false
	case wait > 0:
		t := time.NewTimer(wait)
		defer t.Stop()
		<-t.C
	}
	return true
}

// unknownEndpoint handles a delivery whose endpoint is not in the view. A
// recently stored one may be for an endpoint this worker has not heard of
// yet, so it is tried again shortly; an older one is for a deleted endpoint
// and is dropped.
func (dl *deliverer) unknownEndpoint(ctx context.Context, log *slog.Logger, j *job) {
	if age := time.Since(j.stored); age < dl.cfg.UnknownEndpointGrace {
		log.DebugContext(ctx, "endpoint not in the configuration view yet, retrying", "age", age)
		dl.nak(ctx, log, j, min(unknownEndpointRetry, dl.cfg.UnknownEndpointGrace))
		return
	}
	log.WarnContext(ctx, "endpoint deleted, dropping delivery")
	dl.dropped(ctx, log, j, "endpoint deleted")
}

// record stores the attempt in ATTEMPTS, retrying through a NATS outage or
// leader election for as long as the worker's connection is open, and
// reports whether it is stored. A delivery whose record is not stored must
// not be acked (see leave).
func (dl *deliverer) record(ctx context.Context, log *slog.Logger, a *eventv1.Attempt) bool {
	if err := dl.recorder.record(ctx, log, a); err != nil {
		log.ErrorContext(ctx, "attempt not recorded; the delivery is left unacked and JetStream delivers it again", "attempt_id", a.GetId(), "err", err)
		return false
	}
	return true
}

// restore stores again the record of the successful attempt c of d, found
// in its completion record, and reports whether it is stored. The worker
// that made the attempt may have been unable to store it (it left the
// delivery unacked, which is why it is here again); a record it did store is
// kept once under the same Nats-Msg-Id (the attempt id) within the stream's
// duplicate window. Records from older workers, which keep the attempt id
// alone, are not restored.
func (dl *deliverer) restore(ctx context.Context, log *slog.Logger, d *eventv1.Delivery, ep *configv1.Endpoint, c completion) bool {
	if c.attempt == 0 {
		return true
	}
	return dl.record(ctx, log, &eventv1.Attempt{
		Id:         c.attemptID,
		MessageId:  d.GetMessageId(),
		TenantId:   d.GetTenantId(),
		EndpointId: d.GetEndpointId(),
		EventType:  d.GetEventType(),
		Attempt:    c.attempt,
		Url:        ep.GetUrl(),
		StartedAt:  timestamppb.New(c.started),
		DurationUs: c.duration.Microseconds(),
		Outcome:    eventv1.Outcome_OUTCOME_SUCCESS,
		StatusCode: c.status,
		State:      eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED,
	})
}

// leave gives up on j without acking it: its attempt record could not be
// stored, and acking would lose the record for good. JetStream delivers it
// again after the ack wait, to a worker that finds its completion record
// (after a success) and stores the record then, or makes the attempt again.
func (dl *deliverer) leave(ctx context.Context, log *slog.Logger, j *job) {
	j.settle()
	log.WarnContext(ctx, "delivery left unacked: JetStream redelivers it after the ack wait")
}

// ack removes the delivery from the stream. It does not wait for the
// server's confirmation: a lost ack means a redelivery, which is checked
// against the idempotency record like every delivery.
func (dl *deliverer) ack(ctx context.Context, log *slog.Logger, j *job) {
	if err := j.settle().Ack(); err != nil {
		log.ErrorContext(ctx, "ack failed; JetStream redelivers after the ack wait", "err", err)
	}
}

// nak asks JetStream to deliver the message again after delay.
func (dl *deliverer) nak(ctx context.Context, log *slog.Logger, j *job, delay time.Duration) {
	if err := j.settle().NakWithDelay(delay); err != nil {
		log.ErrorContext(ctx, "nak failed; JetStream redelivers after the ack wait", "err", err)
	}
}
