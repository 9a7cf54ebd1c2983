package standalone_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/metricstest"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// newMetrics is the meter provider a service binary gets, with the
// environment's metric settings cleared for the test.
func newMetrics(t *testing.T) *metrics.Provider {
	t.Helper()
	for _, v := range []string{metrics.EnvMetrics, metrics.EnvTenantLabels, metrics.EnvEndpointLabels,
		"OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
		t.Setenv(v, "")
	}
	p, err := metrics.Setup(context.Background(), "pulsehooks-standalone", "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// closedURL is a loopback URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr + "/closed"
}

// TestMetricsCountWhatHappened sends a known mix of events to endpoints
// that answer 200, 500, 410 and not at all, and reads /metrics, served once
// for all four services on the config listener: every counter equals what
// the test made happen, and the gauges of all four services are there.
func TestMetricsCountWhatHappened(t *testing.T) {
	rs := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: rs.URL(), metrics: newMetrics(t)})
	recv := newScriptedReceiver(t)
	recv.answer("fail", http.StatusInternalServerError)
	recv.answer("gone", http.StatusGone)
	a := sys.createTenant(t, "tenant-a")
	_ = sys.createEndpoint(t, a, map[string]any{"url": recv.srv.URL + "/ok", "event_types": []string{"job.completed"}})
	_ = sys.createEndpoint(t, a, map[string]any{"url": recv.srv.URL + "/fail", "event_types": []string{"job.completed"}})
	_ = sys.createEndpoint(t, a, map[string]any{"url": recv.srv.URL + "/gone", "event_types": []string{"job.failed"}})
	_ = sys.createEndpoint(t, a, map[string]any{"url": closedURL(t), "event_types": []string{"job.failed"}})

	// Ingest: 3 job.completed over HTTP, one of them sent twice with its
	// idempotency key; 1 job.completed over NATS; 1 job.failed; refusals:
	// an unknown type, a bad token, data against its schema.
	for i := range 3 {
		body := map[string]any{"tenant_id": a.ID, "event_type": "job.completed", "data": jobData("job.completed", fmt.Sprint("job_", i)), "idempotency_key": fmt.Sprint("k", i)}
		if code, out := sys.publishHTTP(t, body); code != http.StatusAccepted {
			t.Fatalf("publish %d: status %d (%v)", i, code, out)
		}
	}
	if code, out := sys.publishHTTP(t, map[string]any{"tenant_id": a.ID, "event_type": "job.completed", "data": jobData("job.completed", "job_0"), "idempotency_key": "k0"}); code != http.StatusAccepted || out["duplicate"] != true {
		t.Fatalf("publish again with key k0: status %d (%v), want 202 and a duplicate", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pulseclient.New(sys.nc(t)).Publish(ctx, pulseclient.PublishInput{TenantID: a.ID, EventType: "job.completed", Data: jobData("job.completed", "job_nats")}); err != nil {
		t.Fatalf("publish over NATS: %v", err)
	}
	if code, out := sys.publishHTTP(t, map[string]any{"tenant_id": a.ID, "event_type": "job.failed", "data": jobData("job.failed", "job_f")}); code != http.StatusAccepted {
		t.Fatalf("publish job.failed: status %d (%v)", code, out)
	}
	if code, _ := sys.publishHTTP(t, map[string]any{"tenant_id": a.ID, "event_type": "job.exploded", "data": map[string]any{"job_id": "j"}}); code != http.StatusUnprocessableEntity {
		t.Fatalf("publish of an unknown type: status %d, want 422", code)
	}
	if code := call(t, "POST", sys.svc.IngestURL()+"/v1/events", map[string]string{"authorization": "Bearer nope"}, map[string]any{}, nil); code != http.StatusUnauthorized {
		t.Fatalf("publish with a bad token: status %d, want 401", code)
	}
	if code, _ := sys.publishHTTP(t, map[string]any{"tenant_id": a.ID, "event_type": "job.completed", "data": map[string]any{"job_id": "job_1", "status": "completed"}}); code != http.StatusUnprocessableEntity {
		t.Fatalf("publish against the schema: status %d, want 422", code)
	}

	// Delivery: ok gets the 4 job.completed at once; fail answers 500 to all
	// 5 attempts of each; gone answers 410 once (disabled, dropped); closed
	// refuses the 5 attempts of job.failed.
	const attempts = 5 // startSystem's retry schedule
	recv.waitCount(t, "ok", 4)
	recv.waitCount(t, "fail", 4*attempts)
	recv.waitCount(t, "gone", 1)
	js := sys.js(t)
	rdb := rs.Client(t)
	q, err := retryq.New(rdb, retryq.Options{Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 60*time.Second, func() error {
		for p := range 8 {
			if n, err := q.Len(context.Background(), p); err != nil || n != 0 {
				return fmt.Errorf("retry schedule partition %d holds %d items (%v)", p, n, err)
			}
		}
		return streams.Idle(context.Background(), js)
	})

	f := metricstest.Scrape(t, sys.svc.ConfigURL()+"/metrics")
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pulsehooks_ingest_events_total", []string{"event_type", "job.completed", "result", "accepted"}, 4},
		{"pulsehooks_ingest_events_total", []string{"event_type", "job.completed", "result", "duplicate"}, 1},
		{"pulsehooks_ingest_events_total", []string{"event_type", "job.failed", "result", "accepted"}, 1},
		{"pulsehooks_ingest_events_total", []string{"event_type", "", "result", "unknown_event_type"}, 1},
		{"pulsehooks_ingest_events_total", []string{"event_type", "", "result", "unauthorized"}, 1},
		{"pulsehooks_ingest_events_total", []string{"event_type", "job.completed", "result", "schema_mismatch"}, 1},
		{"pulsehooks_ingest_events_total", nil, 9},
		{"pulsehooks_fanout_deliveries_total", []string{"event_type", "job.completed"}, 8},
		{"pulsehooks_fanout_deliveries_total", []string{"event_type", "job.failed"}, 2},
		{"pulsehooks_delivery_attempts_total", []string{"outcome", "success", "status_class", "2xx"}, 4},
		{"pulsehooks_delivery_attempts_total", []string{"outcome", "http_status", "status_class", "5xx"}, 4 * attempts},
		{"pulsehooks_delivery_attempts_total", []string{"outcome", "http_status", "status_class", "4xx"}, 1},
		{"pulsehooks_delivery_attempts_total", []string{"outcome", "connection", "status_class", "none"}, attempts},
		{"pulsehooks_delivery_attempts_total", nil, 4 + 4*attempts + 1 + attempts},
		{"pulsehooks_delivery_attempt_duration_seconds", []string{"outcome", "success"}, 4},
		{"pulsehooks_delivery_attempt_duration_seconds", []string{"outcome", "http_status"}, 4*attempts + 1},
		{"pulsehooks_delivery_attempt_duration_seconds", []string{"outcome", "connection"}, attempts},
		{"pulsehooks_delivery_end_to_end_seconds", nil, 4},
		{"pulsehooks_delivery_exhausted_total", []string{"reason", "http_status"}, 4},
		{"pulsehooks_delivery_exhausted_total", []string{"reason", "connection"}, 1},
		{"pulsehooks_delivery_exhausted_total", nil, 5},
		{"pulsehooks_endpoints_disabled_total", []string{"reason", "gone"}, 1},
		{"pulsehooks_endpoints_disabled_total", nil, 1},
		{"pulsehooks_retry_schedule_items", nil, 0},
		{"pulsehooks_stream_pending_messages", []string{"stream", "EVENTS", "consumer", "fanout"}, 0},
		{"pulsehooks_stream_pending_messages", []string{"stream", "DELIVERIES"}, 0},
	} {
		if got := f.Sum(tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// Put-offs depend on timing (a new delivery to the failing endpoint
	// waits for its pending retry); only their reasons are fixed.
	for _, s := range f.Series("pulsehooks_delivery_put_off_total") {
		if r := metricstest.Labels(s)["reason"]; r != "failing" && r != "lane_full" && r != "lane_wait" && r != "rate_limited" {
			t.Errorf("put-off reason %q is not one of the documented ones", r)
		}
	}
	// Every series of every service, the gauges included, on one listener.
	for name, series := range map[string]int{
		"pulsehooks_retry_schedule_items":    8,
		"pulsehooks_stream_pending_messages": 1 + 8,
		"pulsehooks_attemptlog_lag_seconds":  2,
		"pulsehooks_partitions_held":         1,
	} {
		if got := len(f.Series(name)); got != series {
			t.Errorf("%s has %d series, want %d", name, got, series)
		}
	}
	// The one worker holds the lease of every partition.
	if got := f.Sum("pulsehooks_partitions_held"); got != 8 {
		t.Errorf("pulsehooks_partitions_held = %v, want 8 (the standalone worker holds every partition's lease)", got)
	}
	for _, s := range f.Series("pulsehooks_attemptlog_lag_seconds") {
		if v := s.GetGauge().GetValue(); v < 0 || v > 60 {
			t.Errorf("attempt log lag %v = %v s, want within a minute", metricstest.Labels(s), v)
		}
	}
	for _, s := range f.Series("pulsehooks_delivery_attempts_total") {
		if _, ok := metricstest.Labels(s)["endpoint"]; ok {
			t.Errorf("attempt series %v has an endpoint label, want it only with %s=true", metricstest.Labels(s), metrics.EnvEndpointLabels)
		}
	}
	if got := f.Sum("target_info", "service_name", "pulsehooks-standalone"); got != 1 {
		t.Errorf("target_info{service_name=pulsehooks-standalone} = %v, want 1", got)
	}
}
