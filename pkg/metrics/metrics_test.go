package metrics

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/pulsehooks/pulsehooks/pkg/metricstest"
)

// clearEnv leaves the variables Setup reads unset for the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, v := range []string{EnvMetrics, EnvTenantLabels, EnvEndpointLabels, "OTEL_METRICS_EXPORTER",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_SDK_DISABLED"} {
		t.Setenv(v, "")
	}
}

func TestPrometheusNamesAndValues(t *testing.T) {
	clearEnv(t)
	p, err := Setup(context.Background(), "pulsehooks-test", "v1")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	m := p.MeterProvider().Meter("test")
	c, err := m.Int64Counter("pulsehooks.test.things", metric.WithUnit("{thing}"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.Float64Histogram("pulsehooks.test.duration", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(AttemptBuckets()...))
	if err != nil {
		t.Fatal(err)
	}
	g, err := m.Int64ObservableGauge("pulsehooks.test.items", metric.WithUnit("{item}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(g, 42, metric.WithAttributes(attribute.Int("partition", 3)))
		return nil
	}, g); err != nil {
		t.Fatal(err)
	}
	red := metric.WithAttributeSet(attribute.NewSet(attribute.String("color", "red")))
	c.Add(context.Background(), 2, red)
	c.Add(context.Background(), 1, red)
	c.Add(context.Background(), 5, metric.WithAttributes(attribute.String("color", "blue")))
	h.Record(context.Background(), 0.02)
	h.Record(context.Background(), 3)

	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	f := metricstest.Scrape(t, srv.URL)
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pulsehooks_test_things_total", []string{"color", "red"}, 3},
		{"pulsehooks_test_things_total", []string{"color", "blue"}, 5},
		{"pulsehooks_test_duration_seconds", nil, 2},
		{"pulsehooks_test_items", []string{"partition", "3"}, 42},
	} {
		if got := f.Sum(tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v = %v, want %v (names: %v)", tt.name, tt.labels, got, tt.want, f.Names())
		}
	}
	for _, s := range f.Series("pulsehooks_test_things_total") {
		if l := metricstest.Labels(s); l["otel_scope_name"] != "" {
			t.Errorf("series %v carries otel_scope_name, want the scope labels dropped", l)
		}
	}
	if got := f.Sum("target_info", "service_name", "pulsehooks-test", "service_version", "v1"); got != 1 {
		t.Errorf("target_info{service_name=pulsehooks-test} = %v, want 1", got)
	}
}

func TestOff(t *testing.T) {
	clearEnv(t)
	t.Setenv(EnvMetrics, "off")
	p, err := Setup(context.Background(), "pulsehooks-test", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Handler() != nil {
		t.Error("Handler() with PULSEHOOKS_METRICS=off is not nil, want no /metrics route")
	}
	if _, ok := p.MeterProvider().(noop.MeterProvider); !ok {
		t.Errorf("MeterProvider() with PULSEHOOKS_METRICS=off is %T, want noop.MeterProvider", p.MeterProvider())
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

func TestLabels(t *testing.T) {
	clearEnv(t)
	t.Setenv(EnvTenantLabels, "true")
	t.Setenv(EnvEndpointLabels, "false")
	p, err := Setup(context.Background(), "pulsehooks-test", "v1")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if want := (Labels{Tenant: true}); p.Labels != want {
		t.Errorf("Labels = %+v, want %+v", p.Labels, want)
	}
	t.Setenv(EnvEndpointLabels, "sometimes")
	if _, err := Setup(context.Background(), "pulsehooks-test", "v1"); err == nil {
		t.Errorf("Setup with %s=sometimes = nil error, want one", EnvEndpointLabels)
	}
}

func TestOTLPWanted(t *testing.T) {
	tests := []struct {
		exporter, endpoint string
		want               bool
	}{
		{"", "", false},
		{"", "http://collector:4318", true},
		{"none", "http://collector:4318", false},
		{"prometheus", "http://collector:4318", false},
		{"prometheus,otlp", "", true},
	}
	for _, tt := range tests {
		clearEnv(t)
		t.Setenv("OTEL_METRICS_EXPORTER", tt.exporter)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tt.endpoint)
		if got := otlpWanted(); got != tt.want {
			t.Errorf("otlpWanted with OTEL_METRICS_EXPORTER=%q OTEL_EXPORTER_OTLP_ENDPOINT=%q = %v, want %v", tt.exporter, tt.endpoint, got, tt.want)
		}
	}
}

func TestCache(t *testing.T) {
	reads := 0
	fail := false
	c := NewCache(50*time.Millisecond, func(context.Context) (int, error) {
		reads++
		if fail {
			return 0, errors.New("down")
		}
		return reads * 10, nil
	})
	ctx := context.Background()
	for range 3 {
		if v, err := c.Get(ctx); v != 10 || err != nil {
			t.Fatalf("Get = %d, %v; want 10, nil from the first read", v, err)
		}
	}
	if reads != 1 {
		t.Errorf("reads after three Gets within the interval = %d, want 1", reads)
	}
	time.Sleep(60 * time.Millisecond)
	fail = true
	if v, err := c.Get(ctx); v != 0 || err == nil {
		t.Errorf("Get after a failed read = %d, %v; want 0 and the error", v, err)
	}
	if reads != 2 {
		t.Errorf("reads = %d, want 2", reads)
	}
}
