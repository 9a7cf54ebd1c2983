package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/natstrace"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Span attribute keys of the fanout span.
const (
	attrTenant     = attribute.Key("pulsehooks.tenant_id")
	attrEventType  = attribute.Key("pulsehooks.event_type")
	attrMessageID  = attribute.Key("pulsehooks.message_id")
	attrDeliveries = attribute.Key("pulsehooks.deliveries")
)

// poisonReason is the termination reason of events that cannot be decoded.
const poisonReason = "not a valid pulsehooks.event.v1.Event"

// worker fans out one event at a time. Its buffers are reused from event to
// event, so a worker must not be shared between goroutines.
type worker struct {
	s             *Service
	event         eventv1.Event
	enc           deliveryEncoder
	pending       *ackWindow
	progress      *time.Timer // fires when the event's AckWait needs renewing
	progressEvery time.Duration
	// sends holds the producer span of each publish awaiting its ack, for
	// recorded fan-outs only (nil otherwise).
	sends map[jetstream.PubAckFuture]trace.Span
	// stored collects the endpoint ids of the deliveries published for the
	// event, for its state record (reused).
	stored []string
	// chunk numbers the event's state records.
	chunk int
}

func newWorker(s *Service) *worker {
	progress := time.NewTimer(time.Hour)
	progress.Stop()
	return &worker{
		s:             s,
		pending:       newAckWindow(s.cfg.PublishWindow),
		progress:      progress,
		progressEvery: s.cfg.AckWait / 3,
	}
}

// handle fans out one event and settles it: ack once every delivery is
// stored, nak with a delay when a publish failed, term when it is poison.
func (w *worker) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		w.terminate(msg, 0, fmt.Errorf("read JetStream metadata: %w", err))
		return
	}
	if err := w.decode(msg.Data()); err != nil {
		w.terminate(msg, meta.Sequence.Stream, err)
		return
	}
	ev := &w.event
	ctx = natsx.Extract(ctx, msg.Headers())
	ctx, span := w.s.tracer.Start(ctx, "fanout", trace.WithSpanKind(trace.SpanKindConsumer))
	defer span.End()
	// Attributes allocate on every event; unsampled spans drop them.
	if span.IsRecording() {
		span.SetAttributes(
			attrTenant.String(ev.GetTenantId()),
			attrEventType.String(ev.GetEventType()),
			attrMessageID.String(ev.GetMessageId()),
		)
		span.SetAttributes(natstrace.ProcessAttrs(msg.Subject(), meta.Consumer, msg.Headers().Get(jetstream.MsgIDHeader))...)
	}

	// A fan-out done again may store deliveries again (once the stream's
	// duplicate window has passed): they are marked so that delivery checks
	// whether they were completed before.
	redo := meta.NumDelivered > 1 || msg.Headers().Get(streams.RedoHeader) != ""
	n, err := w.fanOut(ctx, msg, meta.Sequence.Stream, redo)
	if span.IsRecording() {
		span.SetAttributes(attrDeliveries.Int(n))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "fan-out failed")
		w.retry(ctx, msg, meta.NumDelivered, err)
		return
	}
	w.s.meters.fannedOut(ctx, ev.GetEventType(), n)
	// Not waiting for the server to confirm the ack: a lost ack means a
	// redelivery, whose deliveries the stream deduplicates (and which are
	// marked as a redo for the delivery workers).
	if err := msg.Ack(); err != nil {
		span.RecordError(err)
		w.s.log.WarnContext(ctx, "ack event after its fan-out; it will be redelivered and its deliveries deduplicated",
			"message_id", ev.GetMessageId(), "err", err)
	}
}

// decode decodes msg's body into w.event and checks the fields fanout needs.
func (w *worker) decode(data []byte) error {
	if err := proto.Unmarshal(data, &w.event); err != nil {
		return fmt.Errorf("decode event: %w", err)
	}
	switch {
	case w.event.GetMessageId() == "":
		return errors.New("event has no message_id")
	case w.event.GetTenantId() == "":
		return errors.New("event has no tenant_id")
	case w.event.GetEventType() == "":
		return errors.New("event has no event_type")
	}
	return nil
}

// terminate stops the redelivery of an event that can never be fanned out.
func (w *worker) terminate(msg jetstream.Msg, seq uint64, err error) {
	w.s.log.Error("poison event terminated", "subject", msg.Subject(), "stream_sequence", seq, "err", err)
	if err := msg.TermWithReason(poisonReason); err != nil {
		w.s.log.Warn("terminate poison event", "subject", msg.Subject(), "stream_sequence", seq, "err", err)
	}
}

// retry hands an event whose fan-out failed back to the server: after a
// growing delay, or at once (to any replica) when ctx ended at shutdown.
// Redoing the fan-out is safe: the stream deduplicates the deliveries.
func (w *worker) retry(ctx context.Context, msg jetstream.Msg, numDelivered uint64, cause error) {
	if ctx.Err() != nil {
		w.s.handBack(msg)
		return
	}
	delay := w.s.cfg.retryDelay(numDelivered)
	w.s.log.WarnContext(ctx, "fan-out failed, the event will be redone",
		"message_id", w.event.GetMessageId(), "delivered", numDelivered, "retry_in", delay, "err", cause)
	if err := msg.NakWithDelay(delay); err != nil {
		w.s.log.WarnContext(ctx, "nak event; it will be redelivered after AckWait", "message_id", w.event.GetMessageId(), "err", err)
	}
}
