package delivery

import (
	"context"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestTraceContinuesFromDelivery checks that the delivery span continues the
// trace carried in the Delivery's NATS headers, that the HTTP client span is
// its child, and that the receiver gets a traceparent of the same trace.
func TestTraceContinuesFromDelivery(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	parent, tp0 := traceOneDelivery(t, spans)
	traceID := parent.SpanContext().TraceID()

	var delivery, client sdktrace.ReadOnlySpan
	testenv.WaitFor(t, waitTimeout, func() error {
		delivery, client = nil, nil
		for _, s := range spans.Ended() {
			switch {
			case s.Name() == "delivery":
				delivery = s
			case s.SpanKind() == trace.SpanKindClient:
				client = s
			}
		}
		if delivery == nil || client == nil {
			return fmt.Errorf("ended spans: delivery %v, HTTP client %v", delivery != nil, client != nil)
		}
		return nil
	})
	if got, want := delivery.Parent().SpanID(), parent.SpanContext().SpanID(); got != want || delivery.SpanContext().TraceID() != traceID {
		t.Errorf("delivery span parent = %s in trace %s, want the fanout span %s in trace %s", got, delivery.SpanContext().TraceID(), want, traceID)
	}
	if got, want := client.Parent().SpanID(), delivery.SpanContext().SpanID(); got != want {
		t.Errorf("HTTP client span parent = %s, want the delivery span %s", got, want)
	}
	if got, want := tp0[2], client.SpanContext().SpanID().String(); len(tp0) == 4 && got != want {
		t.Errorf("receiver's traceparent parent id = %s, want the HTTP client span %s", got, want)
	}
}

// TestUnsampledTraceStillReachesTheEndpoint runs a worker whose traces are
// not sampled (as without an exporter): no span is recorded, the HTTP client
// instrumentation is skipped, and the receiver still gets a traceparent of
// the delivery's trace, flagged unsampled.
func TestUnsampledTraceStillReachesTheEndpoint(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	_, tp0 := traceOneDelivery(t, spans, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	if tp0[3] != "00" {
		t.Errorf("receiver's traceparent flags = %q, want 00 (unsampled)", tp0[3])
	}
	if n := len(spans.Ended()); n != 0 {
		t.Errorf("%d spans recorded for an unsampled trace, want none", n)
	}
}

// traceOneDelivery runs a worker whose tracer provider records into spans,
// and delivers one delivery whose event was published inside a "fanout"
// span of another provider (in another process, as far as the worker
// knows), both sampled as opts say (ParentBased by default). It checks
// that the receiver's traceparent and the attempt record carry that trace,
// and returns the fanout span and the traceparent's four fields.
func traceOneDelivery(t *testing.T, spans *tracetest.SpanRecorder, opts ...sdktrace.TracerProviderOption) (trace.Span, []string) {
	t.Helper()
	e := newEnv(t)
	rc := newReceiver(t, nil)
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	tp := sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithSpanProcessor(spans)}, opts...)...)
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e.startWorker(t, testConfig(), workerOptions{tracer: tp})

	fanout := sdktrace.NewTracerProvider(opts...)
	ctx, parent := fanout.Tracer("fanout").Start(context.Background(), "fanout")
	e.publish(ctx, t, newDelivery(ep))
	parent.End()
	traceID := parent.SpanContext().TraceID()

	got := rc.next(t)
	tp0 := strings.Split(got.header.Get("Traceparent"), "-")
	if len(tp0) != 4 || tp0[1] != traceID.String() {
		t.Fatalf("receiver's traceparent = %q, want trace id %s", got.header.Get("Traceparent"), traceID)
	}
	if a := e.attempts(t, 1)[0]; a.TraceId != traceID.String() {
		t.Errorf("attempt trace id = %q, want %s", a.TraceId, traceID)
	}
	return parent, tp0
}
