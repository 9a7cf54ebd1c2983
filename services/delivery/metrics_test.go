package delivery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/metricstest"
)

// TestMetricsPerEndpoint sends deliveries to endpoints that answer 200,
// 500 always, 500 then 200, and 410, with the endpoint label on, and reads
// /metrics: every attempt counted under its endpoint and outcome, the
// end-to-end time only for first attempts that succeeded, the exhausted
// delivery and the disabled endpoint counted once, the gauges read.
func TestMetricsPerEndpoint(t *testing.T) {
	for _, v := range []string{metrics.EnvMetrics, metrics.EnvTenantLabels, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		t.Setenv(v, "")
	}
	t.Setenv(metrics.EnvEndpointLabels, "true")
	mp, err := metrics.Setup(context.Background(), "pulsehooks-delivery", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Shutdown(context.Background())

	e := newEnv(t)
	ok := newEndpoint(t, newReceiver(t, nil).srv.URL)
	fail := newEndpoint(t, newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.WriteHeader(http.StatusInternalServerError)
	}).srv.URL)
	flaky := newEndpoint(t, newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}).srv.URL)
	gone := newEndpoint(t, newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.WriteHeader(http.StatusGone)
	}).srv.URL)
	e.config.put(ok)
	e.config.put(fail)
	e.config.put(flaky)
	e.config.put(gone)
	cfg := testConfig()
	cfg.MetricsEndpointLabels = mp.Labels.Endpoint
	e.startWorker(t, cfg, workerOptions{meter: mp.MeterProvider()})
	ctx := context.Background()
	for range 3 {
		e.publish(ctx, t, newDelivery(ok))
	}
	e.publish(ctx, t, newDelivery(fail))
	e.publish(ctx, t, newDelivery(flaky))
	e.publish(ctx, t, newDelivery(gone))
	n := len(testSchedule)
	e.attempts(t, 3+n+2+1)
	e.waitDeliveriesEmpty(t)

	srv := httptest.NewServer(mp.Handler())
	defer srv.Close()
	f := metricstest.Scrape(t, srv.URL)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pulsehooks_delivery_attempts_total", []string{"endpoint", ok.Id, "outcome", "success", "status_class", "2xx"}, 3},
		{"pulsehooks_delivery_attempts_total", []string{"endpoint", fail.Id, "outcome", "http_status", "status_class", "5xx"}, float64(n)},
		{"pulsehooks_delivery_attempts_total", []string{"endpoint", flaky.Id, "outcome", "http_status", "status_class", "5xx"}, 1},
		{"pulsehooks_delivery_attempts_total", []string{"endpoint", flaky.Id, "outcome", "success", "status_class", "2xx"}, 1},
		{"pulsehooks_delivery_attempts_total", []string{"endpoint", gone.Id, "outcome", "http_status", "status_class", "4xx"}, 1},
		{"pulsehooks_delivery_attempts_total", nil, float64(3 + n + 2 + 1)},
		{"pulsehooks_delivery_attempt_duration_seconds", []string{"outcome", "success"}, 4},
		{"pulsehooks_delivery_attempt_duration_seconds", []string{"outcome", "http_status"}, float64(n + 2)},
		{"pulsehooks_delivery_end_to_end_seconds", nil, 3},
		{"pulsehooks_delivery_exhausted_total", []string{"reason", "http_status"}, 1},
		{"pulsehooks_delivery_exhausted_total", nil, 1},
		{"pulsehooks_endpoints_disabled_total", []string{"reason", "gone"}, 1},
		{"pulsehooks_endpoints_disabled_total", nil, 1},
		{"pulsehooks_retry_schedule_items", []string{"partition", "0"}, 0},
		{"pulsehooks_stream_pending_messages", []string{"stream", "DELIVERIES", "consumer", "deliveries-p0"}, 0},
		{"pulsehooks_partitions_held", nil, 1},
	} {
		if got := f.Sum(tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	for name, want := range map[string]int{"pulsehooks_retry_schedule_items": 1, "pulsehooks_stream_pending_messages": 1, "pulsehooks_partitions_held": 1} {
		if got := len(f.Series(name)); got != want {
			t.Errorf("%s has %d series, want %d", name, got, want)
		}
	}
}
