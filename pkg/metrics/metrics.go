// Package metrics sets up OpenTelemetry metrics the same way in every
// pulsehooks service: one meter provider whose instruments are served in
// Prometheus text format (GET /metrics, from a registry of its own, never the
// global one) and, when the standard OTEL_* variables say so, pushed over
// OTLP. It also holds what the services' instruments share: the histogram
// buckets, the label opt-ins and a cache for gauges read from a server.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Environment variables read by Setup, besides the standard OTEL_* ones.
const (
	// EnvMetrics set to "off" (or "false", "0") turns metrics off: a noop
	// provider, and no /metrics route. For A/B measurements of their cost.
	EnvMetrics = "PULSEHOOKS_METRICS"
	// EnvTenantLabels set to "true" adds a tenant label where one is
	// offered (pulsehooks_ingest_events_total): a series per tenant.
	EnvTenantLabels = "PULSEHOOKS_METRICS_TENANT_LABELS"
	// EnvEndpointLabels set to "true" adds an endpoint label to the
	// delivery attempt counter: a series per endpoint.
	EnvEndpointLabels = "PULSEHOOKS_METRICS_ENDPOINT_LABELS"
)

// Labels are the opt-in labels whose values are not bounded by the code:
// off by default, since 100,000 endpoints would be 100,000 series.
type Labels struct {
	// Tenant adds the tenant id to ingest's event counter.
	Tenant bool
	// Endpoint adds the endpoint id to delivery's attempt counter.
	Endpoint bool
}

// Provider is a service's meter provider and what serves it.
type Provider struct {
	// Labels are the opt-in labels the environment asked for.
	Labels Labels

	mp      metric.MeterProvider
	sdk     *sdkmetric.MeterProvider
	handler http.Handler
}

// Setup returns the meter provider of service. Unless PULSEHOOKS_METRICS is
// off, its instruments are served by Handler in Prometheus text format and,
// when OTEL_METRICS_EXPORTER lists "otlp" (or is unset while
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set),
// pushed over OTLP every OTEL_METRIC_EXPORT_INTERVAL (protocol from
// OTEL_EXPORTER_OTLP_METRICS_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL: grpc,
// or http/protobuf by default). OTEL_METRICS_EXPORTER=none turns OTLP off;
// /metrics stays. The caller must call Shutdown.
func Setup(ctx context.Context, service, version string) (*Provider, error) {
	labels, err := labelsFromEnv()
	if err != nil {
		return nil, err
	}
	if !enabled(os.Getenv(EnvMetrics)) {
		return &Provider{Labels: labels, mp: noop.NewMeterProvider()}, nil
	}
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// otel_scope_* labels on every series name the instrumentation
		// library, the same on all of a service's series: noise.
		otelprom.WithoutScopeInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("create prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{
		sdkmetric.WithResource(newResource(service, version)),
		sdkmetric.WithReader(exp),
		// Exemplars reach neither the Prometheus text format nor a
		// dashboard here, and cost a trace lookup per measurement.
		sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter),
	}
	if otlpWanted() {
		oexp, err := newOTLPExporter(ctx)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(oexp)))
	}
	sdk := sdkmetric.NewMeterProvider(opts...)
	return &Provider{
		Labels:  labels,
		mp:      sdk,
		sdk:     sdk,
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}, nil
}

// MeterProvider is the provider to hand to the services (a noop one when
// metrics are off).
func (p *Provider) MeterProvider() metric.MeterProvider { return p.mp }

// Handler serves the instruments in Prometheus text format; nil when
// metrics are off.
func (p *Provider) Handler() http.Handler { return p.handler }

// Shutdown pushes what OTLP has not sent yet and stops the provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down meter provider: %w", err)
	}
	return nil
}

// Meter returns the meter name of mp, or of a noop provider when mp is nil,
// so services built without one (tests) record nothing.
func Meter(mp metric.MeterProvider, name string) metric.Meter {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	return mp.Meter(name)
}

func enabled(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "false", "0", "no":
		return false
	}
	return true
}

func labelsFromEnv() (Labels, error) {
	var (
		l    Labels
		errs []error
	)
	for _, f := range []struct {
		name string
		dst  *bool
	}{{EnvTenantLabels, &l.Tenant}, {EnvEndpointLabels, &l.Endpoint}} {
		v := strings.TrimSpace(os.Getenv(f.name))
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", f.name, v))
			continue
		}
		*f.dst = b
	}
	return l, errors.Join(errs...)
}

func newResource(service, version string) *resource.Resource {
	own := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service), semconv.ServiceVersion(version))
	res, err := resource.Merge(resource.Default(), own)
	if err != nil {
		// A schema conflict between the defaults and ours: keep ours.
		return own
	}
	return res
}

func otlpWanted() bool {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	if v := os.Getenv("OTEL_METRICS_EXPORTER"); v != "" {
		for _, e := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(e), "otlp") {
				return true
			}
		}
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
}

func newOTLPExporter(ctx context.Context) (sdkmetric.Exporter, error) {
	proto := os.Getenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdkmetric.Exporter
		err error
	)
	switch proto {
	case "grpc":
		exp, err = otlpmetricgrpc.New(ctx)
	case "", "http/protobuf":
		exp, err = otlpmetrichttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q not supported (grpc or http/protobuf)", proto)
	}
	if err != nil {
		return nil, fmt.Errorf("create OTLP metric exporter: %w", err)
	}
	return exp, nil
}
