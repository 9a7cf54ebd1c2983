package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/natstrace"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Span attribute keys, shared with the other services' spans.
const (
	attrTenant    = attribute.Key("pulsehooks.tenant_id")
	attrEventType = attribute.Key("pulsehooks.event_type")
	attrMessageID = attribute.Key("pulsehooks.message_id")
	attrDuplicate = attribute.Key("pulsehooks.duplicate")
)

// storeTimeout bounds each JetStream round trip of a publish: the claim of
// its idempotency key and the wait for the stream's ack. A stream ack that
// does not come in time is answered 504 "the event may have been stored";
// the bound keeps that answer well inside the publisher's own timeout
// (pulseclient.DefaultAttemptTimeout is 5 s; HTTP clients commonly wait
// 10 s or more), so a publisher whose event may have been stored hears so
// instead of giving up on an answer still to come.
const storeTimeout = 4 * time.Second

// result is what a publisher is told about a stored event.
type result struct {
	messageID string
	// duplicate is true when nothing new was stored: the idempotency key had
	// been used, or the stream already held the message id.
	duplicate bool
}

// publisher stores validated events in EVENTS, honouring idempotency keys.
type publisher struct {
	js     jetstream.JetStream
	idem   *idemStore
	tracer trace.Tracer
	log    *slog.Logger
}

// store stores ev and returns its message id once the stream acknowledged
// it. With an idempotency key, the first publish of the key claims a message
// id; later ones get that id back, re-publishing it unless it is known to be
// stored (the stream's duplicate window drops the copy).
//
// The one case that can store an event twice: a publisher stored the event
// but died before marking its record done, and the key is retried after the
// EVENTS duplicate window (streams.Options.DuplicateWindow) has passed.
func (p *publisher) store(ctx context.Context, ev event) (result, error) {
	subject := streams.EventSubject(ev.tenantID, ev.eventType)
	ctx, span := p.tracer.Start(ctx, "ingest publish", trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	// Attributes allocate on every event; unsampled spans (the default
	// without an exporter) drop them, so they are set only when recorded.
	if span.IsRecording() {
		span.SetAttributes(attrTenant.String(ev.tenantID), attrEventType.String(ev.eventType))
		span.SetAttributes(natstrace.PublishAttrs(subject, "")...)
	}

	res, err := p.storeTraced(ctx, ev, subject, span)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, asProblem(err).message)
		return result{}, err
	}
	if span.IsRecording() {
		span.SetAttributes(attrDuplicate.Bool(res.duplicate))
	}
	return res, nil
}

func (p *publisher) storeTraced(ctx context.Context, ev event, subject string, span trace.Span) (result, error) {
	msgID := ids.New(ids.Message)
	var claim idemClaim
	if ev.idempotencyKey != "" {
		cctx, cancel := context.WithTimeout(ctx, storeTimeout)
		var err error
		claim, err = p.idem.claim(cctx, ev.tenantID, ev.idempotencyKey, idemRecord{
			MessageID:   msgID,
			State:       statePending,
			TimestampMS: ev.timestamp.UnixMilli(),
		})
		cancel()
		if errors.Is(err, errCorruptRecord) {
			return result{}, err
		}
		if err != nil {
			return result{}, unavailable("idempotency store unavailable, retry later", err)
		}
		msgID = claim.MessageID
		if span.IsRecording() {
			span.SetAttributes(attrMessageID.String(msgID), semconv.MessagingMessageID(msgID))
		}
		if claim.State == stateDone {
			return result{messageID: msgID, duplicate: true}, nil
		}
		if !claim.created && !ev.timestampGiven {
			// Re-publish the envelope of the first attempt, not a new "now".
			ev.timestamp = time.UnixMilli(claim.TimestampMS).UTC()
		}
	} else {
		if span.IsRecording() {
			span.SetAttributes(attrMessageID.String(msgID), semconv.MessagingMessageID(msgID))
		}
	}

	// A key seen before is published again (the first publisher may have
	// died before or after storing it): marked as a redo, so that its
	// deliveries are checked against those completed, should the copy
	// outlive the stream's duplicate window.
	redo := ev.idempotencyKey != "" && !claim.created
	ack, err := p.append(ctx, msgID, subject, ev, redo)
	if err != nil {
		return result{}, err
	}
	if ev.idempotencyKey != "" {
		if err := p.idem.markDone(claim); err != nil {
			// The event is stored; a retry of this key re-publishes the
			// same message id, which the duplicate window drops.
			p.log.WarnContext(ctx, "idempotency record not marked done", "message_id", msgID, "err", err)
		}
	}
	return result{messageID: msgID, duplicate: ack.Duplicate}, nil
}

// append publishes the event to EVENTS with msgID as Nats-Msg-Id and the
// trace context of ctx in its headers (and streams.RedoHeader with redo),
// and waits for the stream's ack, at most storeTimeout.
func (p *publisher) append(ctx context.Context, msgID, subject string, ev event, redo bool) (*jetstream.PubAck, error) {
	payload, err := envelope(ev.eventType, ev.timestamp, ev.data)
	if err != nil {
		return nil, fmt.Errorf("build envelope of %s: %w", msgID, err)
	}
	body, err := proto.Marshal(&eventv1.Event{
		MessageId:  msgID,
		TenantId:   ev.tenantID,
		EventType:  ev.eventType,
		Timestamp:  timestamppb.New(ev.timestamp),
		Payload:    payload,
		AcceptedAt: timestamppb.Now(),
	})
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", msgID, err)
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	if redo {
		msg.Header.Set(streams.RedoHeader, "1")
	}
	natsx.Inject(ctx, msg)
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(streams.Events))
	if err != nil {
		err = fmt.Errorf("publish %s to %s: %w", msgID, subject, err)
		if notStored(err) {
			return nil, unavailable("event stream unavailable, retry later", err)
		}
		return nil, outcomeUnknown(err)
	}
	return ack, nil
}

// notStored reports whether a failed PublishMsg certainly stored nothing,
// now or later: the message never left the client (the publishing
// connection buffers nothing while reconnecting), no stream was listening,
// or the stream refused it. Any other failure — above all a timeout waiting
// for the ack of a message that was sent — leaves the outcome unknown.
func notStored(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrMaxPayload) ||
		errors.Is(err, nats.ErrInvalidConnection)
}
