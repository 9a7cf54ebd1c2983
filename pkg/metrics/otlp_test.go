package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/metric"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// TestOTLPExport pushes to a real OTLP/HTTP receiver when the standard
// variables name one, besides serving /metrics.
func TestOTLPExport(t *testing.T) {
	var (
		mu    sync.Mutex
		names = map[string]int64{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.URL.Path != "/v1/metrics" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var req collectorpb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rm := range req.GetResourceMetrics() {
			for _, sm := range rm.GetScopeMetrics() {
				for _, m := range sm.GetMetrics() {
					for _, dp := range m.GetSum().GetDataPoints() {
						names[m.GetName()] = dp.GetAsInt()
					}
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer srv.Close()
	clearEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

	p, err := Setup(context.Background(), "pulsehooks-test", "v1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.MeterProvider().Meter("test").Int64Counter("pulsehooks.test.things", metric.WithUnit("{thing}"))
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 7)
	if p.Handler() == nil {
		t.Error("Handler() is nil with OTLP on, want /metrics served as well")
	}
	// Shutdown pushes what the periodic reader holds.
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := names["pulsehooks.test.things"]; got != 7 {
		t.Errorf("OTLP receiver got pulsehooks.test.things = %d (all: %v), want 7", got, names)
	}
}
