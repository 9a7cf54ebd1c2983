package delivery

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

const (
	// settleTimeout bounds the wait for the server to confirm an ack, and
	// the storing of an attempt record.
	settleTimeout = 5 * time.Second
	// unknownEndpointRetry is how soon a delivery for an endpoint not yet in
	// the view is tried again.
	unknownEndpointRetry = time.Second
)

// endpointSource looks endpoints up without a network call (a
// configwatch.View).
type endpointSource interface {
	Endpoint(id string) (*configv1.Endpoint, bool)
}

// deliverer carries one delivery through: endpoint lookup, idempotency
// check, the HTTP attempt, the Redis record of a success, the attempt record,
// then the ack (success, or nothing to send) or the Retrier (failure).
type deliverer struct {
	cfg       Config
	log       *slog.Logger
	tracer    trace.Tracer
	endpoints endpointSource
	idem      idempotency
	sender    *sender
	recorder  recorder
	retrier   Retrier
}

// attemptNumber numbers the attempt about to be made from 1. While failed
// attempts are retried by nakking (nakRetrier), the stored Delivery comes
// back unchanged, so JetStream's delivery count supplies the retries; the
// Redis retry schedule will carry the count in Delivery.attempt instead, with
// each scheduled delivery delivered once.
func attemptNumber(j *job) uint32 {
	return j.delivery.GetAttempt() + uint32(max(j.numDelivered, 1))
}

// deliver runs j to the end. ctx is not cancelled at shutdown: an attempt
// that has started finishes within its timeout, and is then settled.
func (dl *deliverer) deliver(ctx context.Context, j *job) {
	d := j.delivery
	n := attemptNumber(j)
	ctx = natsx.Extract(ctx, j.current().Headers())
	ctx, span := dl.tracer.Start(ctx, "delivery",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("pulsehooks.tenant_id", d.GetTenantId()),
			attribute.String("pulsehooks.endpoint_id", d.GetEndpointId()),
			attribute.String("pulsehooks.message_id", d.GetMessageId()),
			attribute.String("pulsehooks.event_type", d.GetEventType()),
			attribute.Int("pulsehooks.attempt", int(n)),
		))
	defer span.End()
	log := dl.log.With("tenant_id", d.GetTenantId(), "endpoint_id", d.GetEndpointId(),
		"message_id", d.GetMessageId(), "event_type", d.GetEventType(), "attempt", n)

	ep, ok := dl.endpoints.Endpoint(d.GetEndpointId())
	switch {
	case !ok:
		dl.unknownEndpoint(ctx, log, j)
		return
	case ep.GetTenantId() != d.GetTenantId():
		log.ErrorContext(ctx, "endpoint belongs to another tenant, dropping delivery", "endpoint_tenant_id", ep.GetTenantId())
		dl.ack(ctx, log, j)
		return
	case !ep.GetEnabled():
		log.InfoContext(ctx, "endpoint disabled, dropping delivery")
		dl.ack(ctx, log, j)
		return
	}

	done, err := dl.idem.done(ctx, d.GetMessageId(), d.GetEndpointId())
	if err != nil {
		// Without the check a redelivery after a crash could be sent twice;
		// waiting loses nothing, since the delivery stays in the stream.
		log.ErrorContext(ctx, "idempotency check failed, not sending now", "err", err, "retry_in", dl.cfg.RetryDelay)
		span.SetStatus(codes.Error, "idempotency check failed")
		dl.nak(ctx, log, j, dl.cfg.RetryDelay)
		return
	}
	if done {
		log.InfoContext(ctx, "delivery already completed, acking without sending")
		dl.ack(ctx, log, j)
		return
	}

	r, err := dl.sender.send(ctx, ep, d)
	if err != nil {
		log.ErrorContext(ctx, "cannot make the request, not sending now", "err", err, "retry_in", dl.cfg.RetryDelay)
		span.SetStatus(codes.Error, "cannot make the request")
		dl.nak(ctx, log, j, dl.cfg.RetryDelay)
		return
	}
	if len(r.skipped) > 0 {
		log.WarnContext(ctx, "custom headers not sent: reserved or malformed", "headers", r.skipped)
	}
	a := newAttempt(ctx, d, ep, n, r)
	span.SetAttributes(attribute.String("pulsehooks.outcome", a.GetOutcome().String()), attribute.String("pulsehooks.attempt_id", a.GetId()))
	if r.status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", r.status))
	}
	success := r.outcome == eventv1.Outcome_OUTCOME_SUCCESS
	if success {
		// Remember the success before anything else can fail, so that a
		// crash before the ack does not send the webhook again. If Redis
		// refuses, ack all the same: the receiver has the webhook, and
		// nakking would resend it for certain, whereas acking leaves only a
		// crash in the next moments before the ack as a chance of a
		// duplicate (which the webhook-id lets receivers detect).
		if err := dl.idem.markDone(ctx, d.GetMessageId(), d.GetEndpointId(), a.GetId()); err != nil {
			log.ErrorContext(ctx, "delivered, but the idempotency record failed; acking anyway", "err", err)
		}
	}
	dl.record(ctx, log, a)
	if !success {
		span.SetStatus(codes.Error, a.GetOutcome().String())
		log.InfoContext(ctx, "attempt failed", "outcome", a.GetOutcome().String(), "status", r.status, "err", r.err, "duration", r.duration)
		if err := dl.retrier.Retry(ctx, j.settle(), d, a); err != nil {
			log.ErrorContext(ctx, "cannot hand the delivery to the retrier; JetStream redelivers it after the ack wait", "err", err)
		}
		return
	}
	log.InfoContext(ctx, "delivered", "status", r.status, "duration", r.duration)
	if h := dl.cfg.Hooks.AfterSuccess; h != nil {
		h(ctx, d.GetMessageId(), d.GetEndpointId())
	}
	dl.ack(ctx, log, j)
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
	dl.ack(ctx, log, j)
}

// record stores the attempt; a failure loses only the record, never the
// delivery, so it is logged and the delivery proceeds.
func (dl *deliverer) record(ctx context.Context, log *slog.Logger, a *eventv1.Attempt) {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if err := dl.recorder.record(ctx, a); err != nil {
		log.ErrorContext(ctx, "attempt not recorded", "attempt_id", a.GetId(), "err", err)
	}
}

// ack removes the delivery from the stream, waiting for the server's
// confirmation. A lost ack means a redelivery, which the idempotency record
// catches.
func (dl *deliverer) ack(ctx context.Context, log *slog.Logger, j *job) {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if err := j.settle().DoubleAck(ctx); err != nil {
		log.ErrorContext(ctx, "ack failed; JetStream redelivers after the ack wait", "err", err)
	}
}

// nak asks JetStream to deliver the message again after delay.
func (dl *deliverer) nak(ctx context.Context, log *slog.Logger, j *job, delay time.Duration) {
	if err := j.settle().NakWithDelay(delay); err != nil {
		log.ErrorContext(ctx, "nak failed; JetStream redelivers after the ack wait", "err", err)
	}
}
