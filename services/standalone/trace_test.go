package standalone_test

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestOneTracePerEvent follows one event from the processor's span through
// ingest, fanout, delivery and the HTTP attempt: all in one trace, which the
// receiver sees in its traceparent header, with the producer spans of the
// DELIVERIES and ATTEMPTS publishes and the Redis calls made inside
// recorded spans (here the endpoint's rate limit, under delivery's span).
func TestOneTracePerEvent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL(), tp: tp})
	recv := newReceiver(t)
	a := sys.createTenant(t, "tenant-a")
	// A rate limit: delivery asks Redis for a slot, inside its span.
	sys.createEndpoint(t, a, map[string]any{"url": recv.url("a"), "rate_limit": 100})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx, root := tp.Tracer("job-processor").Start(ctx, "job finished")
	_, err := pulseclient.New(sys.nc(t)).Publish(ctx, pulseclient.PublishInput{TenantID: a.ID, EventType: "job.completed", Data: jobData("job.completed", "job_t")})
	root.End()
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	traceID := root.SpanContext().TraceID().String()
	got := recv.waitCount(t, "a", 1)[0]
	// traceparent: 00-<trace id>-<span id>-<flags>
	if tp := got.Header.Get("traceparent"); !strings.Contains(tp, "-"+traceID+"-") {
		t.Errorf("receiver traceparent = %q, want trace id %s", tp, traceID)
	}
	want := []string{"ingest publish", "fanout", "publish DELIVERIES", "delivery", "POST", "publish ATTEMPTS", "evalsha"}
	testenv.WaitFor(t, 10*time.Second, func() error {
		names := map[string]bool{}
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID().String() == traceID {
				names[s.Name()] = true
			}
		}
		for _, w := range want {
			if !names[w] {
				return errNotYet("no span " + w + " in the event's trace; spans: " + strings.Join(keys(names), ", "))
			}
		}
		return nil
	})
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
