package fanout

import (
	"context"
	"fmt"
	"maps"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/natstrace"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
	"google.golang.org/protobuf/proto"
)

// fanOut publishes one delivery of w.event per matching endpoint and waits
// until the stream has stored every one. It returns how many deliveries it
// published; an error means some may not be stored and the event must be
// redone. With redo, the deliveries carry streams.RedoHeader.
func (w *worker) fanOut(ctx context.Context, msg jetstream.Msg, eventSequence uint64, redo bool) (int, error) {
	ev := &w.event
	if _, ok := w.s.view.Tenant(ev.GetTenantId()); !ok {
		w.s.log.WarnContext(ctx, "event of an unknown tenant acknowledged without deliveries",
			"message_id", ev.GetMessageId(), "tenant_id", ev.GetTenantId())
		return 0, nil
	}
	filtered, all := w.match(ev)
	if len(filtered)+len(all) == 0 {
		return 0, nil
	}
	if err := w.enc.reset(ev, eventSequence); err != nil {
		return 0, err
	}
	// The deliveries continue the trace of this fan-out: each from its own
	// producer span when the trace is recorded, else from the fan-out's.
	traceHeader := nats.Header{}
	natsx.Inject(ctx, &nats.Msg{Header: traceHeader})
	if redo {
		traceHeader[streams.RedoHeader] = []string{"1"}
	}
	// Endpoint ids (ep_<ULID>) have one length: the first sizes the window.
	first := filtered
	if len(first) == 0 {
		first = all
	}
	w.pending.reset(w.s.cfg.window(w.enc.size(len(first[0].GetId()))))
	w.progress.Reset(w.progressEvery)
	defer w.progress.Stop()

	n := 0
	w.stored, w.chunk = w.stored[:0], 0
	for _, endpoints := range [...][]*configv1.Endpoint{filtered, all} {
		var prev *configv1.Endpoint
		for _, ep := range endpoints {
			if ep == prev { // the endpoint's filter lists the type twice
				continue
			}
			prev = ep
			if err := w.publish(ctx, msg, ep.GetId(), traceHeader); err != nil {
				w.drainPending(ctx, msg)
				return n, err
			}
			n++
			if w.stored = append(w.stored, ep.GetId()); len(w.stored) == maxStateEndpoints {
				if err := w.publishState(ctx, msg); err != nil {
					w.drainPending(ctx, msg)
					return n, err
				}
			}
		}
	}
	if err := w.publishState(ctx, msg); err != nil {
		w.drainPending(ctx, msg)
		return n, err
	}
	for w.pending.len() > 0 {
		if err := w.awaitOldest(ctx, msg); err != nil {
			w.drainPending(ctx, msg)
			return n, err
		}
	}
	return n, nil
}

// drainPending waits for the publishes still pending after a fan-out failed,
// ignoring their outcome, so that failed fan-outs never leave more than the
// window of publishes in flight. Each resolves within PublishTimeout, or at
// once when ctx has ended.
func (w *worker) drainPending(ctx context.Context, msg jetstream.Msg) {
	for w.pending.len() > 0 {
		_ = w.awaitOldest(ctx, msg) // the fan-out has already failed
	}
}

// publish sends the delivery to one endpoint asynchronously, first waiting
// for the oldest pending store ack if the window is full.
func (w *worker) publish(ctx context.Context, msg jetstream.Msg, endpointID string, traceHeader nats.Header) error {
	for w.pending.full() {
		if err := w.awaitOldest(ctx, msg); err != nil {
			return err
		}
	}
	select {
	case <-w.progress.C:
		w.reportProgress(ctx, msg)
	default:
	}
	header := make(nats.Header, len(traceHeader)+1)
	maps.Copy(header, traceHeader) // values are shared, never modified
	msgID := streams.DeliveryMsgID(w.event.GetMessageId(), endpointID)
	header[jetstream.MsgIDHeader] = []string{msgID}
	out := &nats.Msg{
		Subject: streams.DeliverySubject(endpointID, w.s.partitions),
		Data:    w.enc.encode(endpointID),
		Header:  header,
	}
	var send trace.Span
	if trace.SpanFromContext(ctx).IsRecording() {
		// Replaces the shared traceparent in this message's own header.
		var sctx context.Context
		sctx, send = natstrace.StartPublish(ctx, w.s.tracer, sendSpanName, out.Subject, msgID)
		natsx.Inject(sctx, out)
	}
	f, err := w.s.js.PublishMsgAsync(out)
	if err != nil {
		err = fmt.Errorf("publish delivery of %s to %s: %w", w.event.GetMessageId(), endpointID, err)
		if send != nil {
			send.RecordError(err)
			send.SetStatus(codes.Error, "publish failed")
			send.End()
		}
		return err
	}
	w.pending.push(f)
	if send != nil {
		if w.sends == nil {
			w.sends = make(map[jetstream.PubAckFuture]trace.Span)
		}
		w.sends[f] = send
	}
	return nil
}

// maxStateEndpoints is the most endpoints one state record names (about 30
// KiB of ids); a larger fan-out stores several.
const maxStateEndpoints = 1000

// publishState stores, asynchronously like the deliveries and awaited with
// them before the event's ack, the state record saying the deliveries to
// w.stored are pending. Its time is the event's accepted time, so a redone
// fan-out never hides a later decision; its Nats-Msg-Id
// (<msg>.pending.<chunk>) makes a redo within the duplicate window store
// it once.
func (w *worker) publishState(ctx context.Context, msg jetstream.Msg) error {
	if len(w.stored) == 0 {
		return nil
	}
	for w.pending.full() {
		if err := w.awaitOldest(ctx, msg); err != nil {
			return err
		}
	}
	ev := &w.event
	at := ev.GetAcceptedAt()
	if at == nil {
		at = ev.GetTimestamp()
	}
	id := ev.GetMessageId() + ".pending." + strconv.Itoa(w.chunk)
	data, err := proto.Marshal(&eventv1.StateRecord{
		Id:          id,
		TenantId:    ev.GetTenantId(),
		MessageId:   ev.GetMessageId(),
		EventType:   ev.GetEventType(),
		EndpointIds: w.stored,
		State:       eventv1.DeliveryState_DELIVERY_STATE_PENDING,
		Reason:      "fanned out",
		At:          at,
	})
	if err != nil {
		return fmt.Errorf("encode state record of %s: %w", ev.GetMessageId(), err)
	}
	w.stored, w.chunk = w.stored[:0], w.chunk+1
	out := &nats.Msg{
		Subject: streams.StateSubject(ev.GetTenantId(), streams.StateSourceFanout),
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
	}
	f, err := w.s.js.PublishMsgAsync(out)
	if err != nil {
		return fmt.Errorf("publish state record of %s: %w", ev.GetMessageId(), err)
	}
	w.pending.push(f)
	return nil
}

// sendSpanName names the producer span of each delivery's publish.
var sendSpanName = natstrace.PublishSpanName(streams.Deliveries)

// endSend ends the producer span of f's publish, if it has one, with err.
func (w *worker) endSend(f jetstream.PubAckFuture, err error) {
	span, ok := w.sends[f]
	if !ok {
		return
	}
	delete(w.sends, f)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "delivery not stored")
	}
	span.End()
}

// awaitOldest waits for the store ack of the oldest pending publish,
// renewing the event's AckWait while it waits.
func (w *worker) awaitOldest(ctx context.Context, msg jetstream.Msg) error {
	f := w.pending.pop()
	ok, failed := f.Ok(), f.Err()
	for {
		select {
		case <-ok:
			w.endSend(f, nil)
			return nil
		case err := <-failed:
			err = fmt.Errorf("store delivery %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			w.endSend(f, err)
			return err
		case <-w.progress.C:
			w.reportProgress(ctx, msg)
		case <-ctx.Done():
			err := fmt.Errorf("wait for delivery store acks: %w", context.Cause(ctx))
			w.endSend(f, err)
			return err
		}
	}
}

// reportProgress tells the server the event is still being worked on, so
// its AckWait starts again, and re-arms the progress timer.
func (w *worker) reportProgress(ctx context.Context, msg jetstream.Msg) {
	if err := msg.InProgress(); err != nil {
		w.s.log.WarnContext(ctx, "report fan-out progress", "message_id", w.event.GetMessageId(), "err", err)
	}
	w.progress.Reset(w.progressEvery)
}
