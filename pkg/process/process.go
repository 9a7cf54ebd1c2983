// Package process is the scaffolding every pulsehooks service binary shares:
// a main that stops on SIGINT or SIGTERM and exits once, and the process-wide
// dependencies (telemetry, logger, NATS connection, config service client)
// set up in one call and closed in one call, in order.
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"

	"github.com/pulsehooks/pulsehooks/pkg/grpcx"
	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/pprofserver"
	"github.com/pulsehooks/pulsehooks/pkg/telemetry"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// flushTimeout bounds the flush of what the NATS connection still buffers
// (acks, naks, replies) when the process stops.
const flushTimeout = 5 * time.Second

// Main runs run with a context that ends on SIGINT or SIGTERM. If run fails,
// Main prints "name: error" to stderr and exits with status 1; otherwise it
// returns. It is the only place a service binary exits.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if code := report(os.Stderr, name, err); code != 0 {
		os.Exit(code)
	}
}

// report writes err, if any, to w and returns the exit status for it.
func report(w io.Writer, name string, err error) int {
	if err == nil {
		return 0
	}
	_, _ = fmt.Fprintln(w, name+":", err)
	return 1
}

// Options configure Start.
type Options struct {
	// Service is the short service name ("fanout"). Logs carry it as
	// "service"; traces and the NATS client are named "pulsehooks-" + Service.
	Service string
	// Version is reported in traces.
	Version string
	// NATSURL is the NATS server to connect to.
	NATSURL string
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string
	// PprofAddr, when set, serves net/http/pprof there
	// (PULSEHOOKS_PPROF_ADDR; off by default, bind it to loopback).
	PprofAddr string
}

// Process holds the dependencies a service process shares: set up by Start,
// released by Close.
type Process struct {
	// Logger writes JSON logs to stderr.
	Logger *slog.Logger
	// TracerProvider is configured by the standard OTEL_* variables.
	TracerProvider *sdktrace.TracerProvider
	// Metrics is the meter provider and its /metrics handler
	// (PULSEHOOKS_METRICS, PULSEHOOKS_METRICS_*_LABELS, OTEL_* variables).
	Metrics *metrics.Provider
	// NATS is a connection that reconnects forever.
	NATS *nats.Conn

	shutdown  func(context.Context) error
	conns     []*grpc.ClientConn
	stopPprof func()
}

// Start sets up telemetry and the logger and connects to NATS. If it fails,
// what it set up is released again. The caller must Close the Process.
func Start(ctx context.Context, o Options) (*Process, error) {
	name := "pulsehooks-" + o.Service
	tp, shutdown, err := telemetry.Setup(ctx, name, o.Version)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	mp, err := metrics.Setup(ctx, name, o.Version)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("metrics: %w", err), shutdown(context.WithoutCancel(ctx)))
	}
	shutdown = joinShutdown(mp.Shutdown, shutdown)
	p := &Process{
		Logger:         telemetry.NewLogger(os.Stderr, o.LogLevel, o.Service),
		TracerProvider: tp,
		Metrics:        mp,
		shutdown:       shutdown,
	}
	p.NATS, err = natsx.Connect(o.NATSURL, name, p.Logger)
	if err != nil {
		return nil, errors.Join(err, shutdown(context.WithoutCancel(ctx)))
	}
	if o.PprofAddr != "" {
		bound, stop, err := pprofserver.Serve(o.PprofAddr)
		if err != nil {
			p.NATS.Close()
			return nil, errors.Join(err, shutdown(context.WithoutCancel(ctx)))
		}
		p.stopPprof = stop
		p.Logger.Info("pprof listening", "addr", bound)
	}
	return p, nil
}

// joinShutdown runs every f in order and joins their errors.
func joinShutdown(fs ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error { return telemetry.JoinShutdown(ctx, fs...) }
}

// DialConfig returns a client of the config service at addr, sending token
// as a bearer token if it is not empty. The connection is lazy; Close closes
// it.
func (p *Process) DialConfig(addr, token string) (configv1.ConfigServiceClient, error) {
	conn, err := grpcx.Dial(addr, token, p.TracerProvider)
	if err != nil {
		return nil, err
	}
	p.conns = append(p.conns, conn)
	return grpcx.ConfigClient(conn), nil
}

// Close releases the dependencies in the reverse order of their set-up:
// it closes the config service connections, sends what the NATS connection
// still buffers (for up to 5 s) and closes it, then shuts telemetry down,
// flushing pending spans and metrics within ctx. Failures to close a config service
// connection or to flush NATS are logged; the telemetry shutdown error is
// returned.
// Call Close with a context that has not ended, such as
// context.WithoutCancel of the one given to Start.
func (p *Process) Close(ctx context.Context) error {
	if p.stopPprof != nil {
		p.stopPprof()
	}
	for i := len(p.conns) - 1; i >= 0; i-- {
		if err := p.conns[i].Close(); err != nil {
			p.Logger.Warn("close config service connection", "err", err)
		}
	}
	if err := p.NATS.FlushTimeout(flushTimeout); err != nil {
		p.Logger.Warn("flush nats connection", "err", err)
	}
	p.NATS.Close()
	if err := p.shutdown(ctx); err != nil {
		return fmt.Errorf("shut down telemetry: %w", err)
	}
	return nil
}
