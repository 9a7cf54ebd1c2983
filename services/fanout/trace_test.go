package fanout

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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

	got := h.deliveriesOf(ev.GetMessageId())
	if len(got) != len(eps) {
		t.Fatalf("stored %d deliveries, want %d", len(got), len(eps))
	}
	for id, d := range got {
		sc := trace.SpanContextFromContext(natsx.Extract(context.Background(), d.header))
		if sc.TraceID() != parent.TraceID() || sc.SpanID() != span.SpanContext().SpanID() {
			t.Errorf("delivery to %s carries trace %s span %s, want trace %s span %s (the fanout span)",
				id, sc.TraceID(), sc.SpanID(), parent.TraceID(), span.SpanContext().SpanID())
		}
	}
}
