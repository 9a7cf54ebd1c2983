package ingest

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/metricstest"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestEventsCounterWithTenantLabels counts a known mix over both transports
// with the tenant label on: known tenants get their own series, anything
// else none, and the counts are exact.
func TestEventsCounterWithTenantLabels(t *testing.T) {
	for _, v := range []string{metrics.EnvMetrics, metrics.EnvEndpointLabels, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		t.Setenv(v, "")
	}
	t.Setenv(metrics.EnvTenantLabels, "true")
	mp, err := metrics.Setup(context.Background(), "pulsehooks-ingest", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer mp.Shutdown(context.Background())
	h := newHarness(t, options{metrics: mp, configure: func(c *Config) { c.MetricsTenantLabels = mp.Labels.Tenant }})

	post := func(tenant, typ, data string, want int) {
		t.Helper()
		body := fmt.Sprintf(`{"tenant_id":%q,"event_type":%q,"data":%s}`, tenant, typ, data)
		if got, _, b := h.post(body, nil); got != want {
			t.Fatalf("POST %s: %d %s, want %d", body, got, b, want)
		}
	}
	for range 2 {
		post(tenantA, "job.completed", `{"job_id":"j"}`, http.StatusAccepted)
	}
	post(tenantB, "job.completed", `{"job_id":"j"}`, http.StatusAccepted)
	post("ten_nobody", "job.completed", `{"job_id":"j"}`, http.StatusUnprocessableEntity)
	post(tenantA, "job.nope", `{"job_id":"j"}`, http.StatusUnprocessableEntity)
	if got, _, _ := h.post(`{"tenant_id":`, nil); got != http.StatusBadRequest {
		t.Fatalf("malformed body: %d, want 400", got)
	}
	h.mustPublish(&eventv1.PublishRequest{TenantId: tenantB, EventType: "job.failed", Data: []byte(`{"job_id":"j"}`)})
	reply, err := h.publishRaw([]byte("not protobuf at all \xff"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "400" {
		t.Fatalf("malformed NATS request answered %q, want 400", code)
	}

	f := metricstest.Scrape(t, h.url("/metrics"))
	for _, tt := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"tenant", tenantA, "event_type", "job.completed", "result", "accepted"}, 2},
		{[]string{"tenant", tenantB, "event_type", "job.completed", "result", "accepted"}, 1},
		{[]string{"tenant", tenantB, "event_type", "job.failed", "result", "accepted"}, 1},
		{[]string{"tenant", "", "event_type", "job.completed", "result", "unknown_tenant"}, 1},
		{[]string{"tenant", tenantA, "event_type", "", "result", "unknown_event_type"}, 1},
		{[]string{"tenant", "", "event_type", "", "result", "malformed_request"}, 2},
		{nil, 8},
	} {
		if got := f.Sum("pulsehooks_ingest_events_total", tt.labels...); got != tt.want {
			t.Errorf("pulsehooks_ingest_events_total%v = %v, want %v", tt.labels, got, tt.want)
		}
	}
	if n := len(f.Series("pulsehooks_ingest_events_total")); n != 6 {
		t.Errorf("pulsehooks_ingest_events_total has %d series, want 6", n)
	}
}
