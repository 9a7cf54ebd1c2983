package natstrace

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestStartPublish(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")

	ctx, parent := tracer.Start(context.Background(), "parent")
	_, span := StartPublish(ctx, tracer, PublishSpanName("EVENTS"), "events.t.x", "msg_1")
	span.End()
	parent.End()
	var got []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "publish EVENTS" {
			got = append(got, s)
		}
	}
	if len(got) != 1 || got[0].SpanKind() != trace.SpanKindProducer || got[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("publish spans = %v, want one producer span under the parent", got)
	}
	attrs := map[string]string{}
	for _, a := range got[0].Attributes() {
		attrs[string(a.Key)] = a.Value.String()
	}
	for k, v := range map[string]string{
		"messaging.system": "nats", "messaging.operation.type": "send", "messaging.operation.name": "publish",
		"messaging.destination.name": "events.t.x", "messaging.message.id": "msg_1",
	} {
		if attrs[k] != v {
			t.Errorf("%s = %q, want %q", k, attrs[k], v)
		}
	}

	// Inside an unsampled trace: no span, ctx unchanged, and ending the
	// returned span leaves the caller's own span alone.
	rec.Reset()
	unsampled := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.NeverSample())).Tracer("test")
	uctx, own := unsampled.Start(context.Background(), "own")
	gotCtx, span := StartPublish(uctx, tracer, "publish X", "x", "")
	span.End()
	if gotCtx != uctx || span.SpanContext().IsValid() {
		t.Errorf("unsampled StartPublish returned a new context or a real span %v", span.SpanContext())
	}
	if !trace.SpanFromContext(gotCtx).SpanContext().Equal(own.SpanContext()) {
		t.Error("the caller's span was replaced")
	}
	own.End()
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded in an unsampled trace", n)
	}
}
