// Package telemetry sets up tracing and logging the same way in every
// pulsehooks service: an OpenTelemetry tracer provider configured by the
// standard OTEL_* variables, and log/slog JSON logs that carry trace ids.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Setup returns a tracer provider for service and its shutdown function, which
// flushes pending spans. Spans are exported over OTLP when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// (protocol from OTEL_EXPORTER_OTLP_PROTOCOL: grpc, or http/protobuf by
// default), and OTEL_TRACES_EXPORTER is not "none". Without an exporter, spans
// are created but not recorded (unless a sampled parent asks), so trace ids
// still reach logs and outgoing requests at little cost.
func Setup(ctx context.Context, service, version string) (*sdktrace.TracerProvider, func(context.Context) error, error) {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(service), semconv.ServiceVersion(version)))
	if err != nil {
		// A schema conflict between the defaults and ours: keep ours.
		res = resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service), semconv.ServiceVersion(version))
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if exporterWanted() {
		exp, err := newExporter(ctx)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	} else {
		// Nothing would read recorded spans: keep trace ids (logs, traceparent)
		// but do not record, unless a caller's sampled trace asks for it.
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	return tp, tp.Shutdown, nil
}

func exporterWanted() bool {
	if strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

func newExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch proto {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q not supported (grpc or http/protobuf)", proto)
	}
	if err != nil {
		return nil, fmt.Errorf("create OTLP trace exporter: %w", err)
	}
	return exp, nil
}

// NewLogger returns a JSON slog logger writing to w at level (debug, info,
// warn, error; default info), adding trace_id and span_id from the context
// of each record, and the service name.
func NewLogger(w io.Writer, level, service string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
	return slog.New(traceHandler{h}).With("service", service)
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if err := h.Handler.Handle(ctx, r); err != nil {
		return fmt.Errorf("write log record: %w", err)
	}
	return nil
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// JoinShutdown runs every shutdown function and joins their errors.
func JoinShutdown(ctx context.Context, fns ...func(context.Context) error) error {
	var errs []error
	for _, f := range fns {
		if f != nil {
			errs = append(errs, f(ctx))
		}
	}
	return errors.Join(errs...)
}
