package fanout

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

func TestTraceContinuesFromEventToDeliveries(t *testing.T) {
	h := newHarness(t, false)
	tenant, eps := addEndpoints(h, 2)
	tp, rec := newRecorder(t)
	h.start(testConfig(), tp)

	// The producer span of ingest, in another process.
	ingest := sdktrace.NewTracerProvider()
	ctx, producer := ingest.Tracer("ingest").Start(context.Background(), "publish", trace.WithSpanKind(trace.SpanKindProducer))
	carrier := &nats.Msg{}
	natsx.Inject(ctx, carrier)
	producer.End()
	parent := producer.SpanContext()

	ev := newEvent(tenant.GetId(), "job.completed")
	h.waitSettled(h.publishEvent(ev, carrier.Header))
	testenv.WaitFor(t, settleTimeout, func() error {
		if n := len(fanoutSpans(rec)); n != 1 {
			return fmt.Errorf("%d fanout spans ended, want 1", n)
		}
		return nil
	})
	span := fanoutSpans(rec)[0]

	if got := span.Parent(); got.TraceID() != parent.TraceID() || got.SpanID() != parent.SpanID() || !got.IsRemote() {
		t.Errorf("fanout span parent = trace %s span %s (remote %v), want trace %s span %s (remote)",
			got.TraceID(), got.SpanID(), got.IsRemote(), parent.TraceID(), parent.SpanID())
	}
	if got := span.SpanKind(); got != trace.SpanKindConsumer {
		t.Errorf("fanout span kind = %v, want %v", got, trace.SpanKindConsumer)
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, a := range span.Attributes() {
		attrs[a.Key] = a.Value
	}
	for _, want := range []attribute.KeyValue{
		attrTenant.String(tenant.GetId()),
		attrEventType.String("job.completed"),
		attrMessageID.String(ev.GetMessageId()),
		attrDeliveries.Int(len(eps)),
	} {
		if got, ok := attrs[want.Key]; !ok || got != want.Value {
			t.Errorf("fanout span attribute %s = %v, want %v", want.Key, got.String(), want.Value.String())
		}
	}

	consumerAttrs := map[attribute.Key]string{
		"messaging.system":              "nats",
		"messaging.operation.type":      "process",
		"messaging.operation.name":      "process",
		"messaging.destination.name":    "events." + tenant.GetId() + ".job.completed",
		"messaging.consumer.group.name": "fanout",
		"messaging.message.id":          ev.GetMessageId(),
	}
	checkAttrs(t, span, consumerAttrs)

	got := h.deliveriesOf(ev.GetMessageId())
	if len(got) != len(eps) {
		t.Fatalf("stored %d deliveries, want %d", len(got), len(eps))
	}
	// Each delivery's publish has its producer span, a child of the fanout
	// span, and the delivery carries that span's context.
	sends := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	testenv.WaitFor(t, settleTimeout, func() error {
		for _, s := range rec.Ended() {
			if s.Name() == "publish DELIVERIES" {
				sends[s.SpanContext().SpanID()] = s
			}
		}
		if len(sends) != len(eps) {
			return fmt.Errorf("%d publish DELIVERIES spans ended, want %d", len(sends), len(eps))
		}
		return nil
	})
	for id, d := range got {
		sc := trace.SpanContextFromContext(natsx.Extract(context.Background(), d.header))
		send, ok := sends[sc.SpanID()]
		if sc.TraceID() != parent.TraceID() || !ok {
			t.Errorf("delivery to %s carries trace %s span %s, want trace %s and a publish DELIVERIES span",
				id, sc.TraceID(), sc.SpanID(), parent.TraceID())
			continue
		}
		if send.Parent().SpanID() != span.SpanContext().SpanID() || send.SpanKind() != trace.SpanKindProducer {
			t.Errorf("publish span of %s: parent %s kind %v, want the fanout span %s, producer",
				id, send.Parent().SpanID(), send.SpanKind(), span.SpanContext().SpanID())
		}
		checkAttrs(t, send, map[attribute.Key]string{
			"messaging.system":           "nats",
			"messaging.operation.type":   "send",
			"messaging.operation.name":   "publish",
			"messaging.destination.name": d.subject,
			"messaging.message.id":       d.msgID,
		})
	}
}

// TestUnsampledFanOutStartsNoPublishSpans: inside an unsampled trace the
// deliveries carry the fanout span's context, and no span is recorded.
func TestUnsampledFanOutStartsNoPublishSpans(t *testing.T) {
	h := newHarness(t, false)
	tenant, eps := addEndpoints(h, 2)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h.start(testConfig(), tp)

	ev := newEvent(tenant.GetId(), "job.completed")
	carrier := &nats.Msg{Header: nats.Header{}}
	carrier.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
	h.waitSettled(h.publishEvent(ev, carrier.Header))
	got := h.deliveriesOf(ev.GetMessageId())
	if len(got) != len(eps) {
		t.Fatalf("stored %d deliveries, want %d", len(got), len(eps))
	}
	spanIDs := map[string]bool{}
	for _, d := range got {
		parts := strings.Split(d.header.Get("traceparent"), "-")
		if len(parts) != 4 || parts[1] != "0af7651916cd43dd8448eb211c80319c" || parts[3] != "00" {
			t.Errorf("delivery traceparent = %q, want the event's trace, unsampled", d.header.Get("traceparent"))
			continue
		}
		spanIDs[parts[2]] = true
	}
	if len(spanIDs) != 1 {
		t.Errorf("deliveries carry %d span ids, want 1 (the fanout span's)", len(spanIDs))
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded in an unsampled trace, want none", n)
	}
}

// checkAttrs checks that span has each of want's attributes.
func checkAttrs(t *testing.T, span sdktrace.ReadOnlySpan, want map[attribute.Key]string) {
	t.Helper()
	got := map[attribute.Key]string{}
	for _, a := range span.Attributes() {
		got[a.Key] = a.Value.String()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s span attribute %s = %q, want %q", span.Name(), k, got[k], v)
		}
	}
}
