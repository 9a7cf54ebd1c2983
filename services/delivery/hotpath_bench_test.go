package delivery

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// The hot path's steps one at a time, against a real redis-server, an
// embedded nats-server and a loopback HTTP receiver, with allocation counts:
// the per-call costs behind the bench's CPU per delivery (issue 13).

// cpuPerOp, deferred as defer cpuPerOp(b)() before the loop, reports the CPU time (user and
// system) the test process spent per op: the client's share of the cost,
// which the wall time per op (mostly waiting for the servers) hides. The
// embedded nats-server, where used, runs in the process and is included.
func cpuPerOp(b *testing.B) func() {
	b.Helper()
	start := processCPU(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((processCPU(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
		}
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchDelivery is a fresh delivery of a 1 KiB payload to ep.
func benchDelivery(ep *configv1.Endpoint) *eventv1.Delivery {
	return &eventv1.Delivery{
		MessageId:  ids.New(ids.Message),
		TenantId:   ep.GetTenantId(),
		EndpointId: ep.GetId(),
		EventType:  "job.completed",
		Payload:    make([]byte, 1024),
		AcceptedAt: timestamppb.Now(),
	}
}

func benchEndpoint(b *testing.B, url string) *configv1.Endpoint {
	b.Helper()
	key, err := signature.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	return &configv1.Endpoint{
		Id: ids.New(ids.Endpoint), TenantId: "ten_bench", Url: url, Enabled: true,
		Secrets: []*configv1.Secret{{Key: key, CreatedAt: timestamppb.Now()}},
	}
}

// BenchmarkCompletionCheck is one completion check (a GET through the
// shared pipeline) with nothing else in flight, as at low rates.
func BenchmarkCompletionCheck(b *testing.B) {
	idem := newIdempotency(testenv.StartRedis(b).Client(b), time.Hour)
	d := benchDelivery(&configv1.Endpoint{Id: "ep_bench", TenantId: "ten_bench"})
	ctx := context.Background()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		if _, done, err := idem.done(ctx, d); err != nil || done {
			b.Fatal(done, err)
		}
	}
}

// BenchmarkCompletionCheckParallel is completion checks from many
// deliveries at once, sharing round trips.
func BenchmarkCompletionCheckParallel(b *testing.B) {
	idem := newIdempotency(testenv.StartRedis(b).Client(b), time.Hour)
	d := benchDelivery(&configv1.Endpoint{Id: "ep_bench", TenantId: "ten_bench"})
	ctx := context.Background()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, done, err := idem.done(ctx, d); err != nil || done {
				b.Error(done, err)
				return
			}
		}
	})
}

// BenchmarkMarkDone is one completion record (SET and DEL in one round
// trip) with nothing else in flight.
func BenchmarkMarkDone(b *testing.B) {
	idem := newIdempotency(testenv.StartRedis(b).Client(b), time.Hour)
	d := benchDelivery(&configv1.Endpoint{Id: "ep_bench", TenantId: "ten_bench"})
	a := &eventv1.Attempt{Id: ids.New(ids.Attempt), Attempt: 1, StartedAt: timestamppb.Now(), StatusCode: 200}
	ctx := context.Background()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		if err := idem.markDone(ctx, d, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecord is one attempt record stored in ATTEMPTS (a JetStream
// publish waiting for its ack).
func BenchmarkRecord(b *testing.B) {
	n := testenv.StartNATS(b)
	js := n.JetStream(b)
	if _, err := streams.EnsureAttempts(context.Background(), js, streams.Options{}); err != nil {
		b.Fatal(err)
	}
	rc := recorder{js: js, tracer: noop.NewTracerProvider().Tracer("")}
	ep := benchEndpoint(b, "http://127.0.0.1:1/")
	d := benchDelivery(ep)
	r := &result{started: time.Now(), duration: time.Millisecond, outcome: eventv1.Outcome_OUTCOME_SUCCESS, status: 200,
		response: http.Header{"Content-Length": {"0"}, "Date": {"Mon, 07 Dec 2026 16:00:00 GMT"}}}
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		if err := rc.record(ctx, log, newAttempt(ctx, d, ep, 1, r)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSend is one HTTP attempt to a loopback receiver that answers 200
// with an empty body, over a kept-alive connection.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	cfg := Config{AllowNetworks: loopback}.withDefaults()
	s := &sender{client: newHTTPClient(cfg), cfg: cfg, tracer: noop.NewTracerProvider().Tracer("")}
	ep := benchEndpoint(b, srv.URL+"/hook")
	d := benchDelivery(ep)
	ctx := context.Background()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for b.Loop() {
		r, err := s.send(ctx, ctx, ep, d)
		if err != nil || r.status != http.StatusOK {
			b.Fatal(r, err)
		}
	}
}
