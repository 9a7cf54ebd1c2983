// Package ingest accepts job status changes from Pulse's job processors,
// over NATS request/reply (a micro service) and over HTTP, validates them
// against an in-memory view of the configuration, and stores each as a
// Standard Webhooks envelope in the EVENTS stream. A publisher is answered
// only after the stream acknowledged the event.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"

	"github.com/pulsehooks/pulsehooks/pkg/configwatch"
	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// tracerName names the tracer of ingest's spans.
const tracerName = "github.com/pulsehooks/pulsehooks/services/ingest"

// Deps are the connections ingest uses.
type Deps struct {
	// NATS is the connection to serve on. Unless it was made with
	// nats.ReconnectBufSize(-1), ingest publishes on a second connection
	// with the same options and that setting (see publishConn).
	NATS *nats.Conn
	// Config is the config service, watched for tenants and event types.
	Config configv1.ConfigServiceClient
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// TracerProvider makes the spans; nil makes none.
	TracerProvider trace.TracerProvider
	// Redis holds the per-tenant rate limits shared by the replicas; nil
	// applies none.
	Redis redis.UniversalClient
	// MeterProvider makes ingest's instruments; nil records none.
	MeterProvider metric.MeterProvider
	// MetricsHandler, if set, is served at GET /metrics on the HTTP listener.
	MetricsHandler http.Handler
}

// Service is the ingest service. Make it with New and run it with Run.
type Service struct {
	cfg Config
	log *slog.Logger
	nc  *nats.Conn
	// pubNC publishes events and idempotency records; ownPubNC says it was
	// dialled by New and is closed by Run.
	pubNC     *nats.Conn
	ownPubNC  bool
	js        jetstream.JetStream
	view      *configwatch.View
	validator validator
	publisher *publisher
	inflight  *inflight
	limiter   *limiter
	meters    *meters
	ln        net.Listener
	http      *http.Server
	// prepared is closed once the EVENTS stream and the idempotency bucket
	// are ensured and publisher.idem is set.
	prepared chan struct{}
	// stopping is set when shutdown starts; /readyz then fails.
	stopping atomic.Bool
	// serving is set once the NATS server has the queue subscription, so
	// /readyz does not pass while NATS publishers would get no responders.
	serving atomic.Bool
}

// New checks cfg and binds the HTTP listener. Nothing runs until Run, which
// also ensures the EVENTS stream and the idempotency bucket.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.NATS == nil {
		return nil, errors.New("ingest: Deps.NATS is required")
	}
	if deps.Config == nil {
		return nil, errors.New("ingest: Deps.Config is required")
	}
	if limit := int64(cfg.MaxDataBytes) + envelopeOverhead; limit > deps.NATS.MaxPayload() {
		return nil, fmt.Errorf("ingest: MaxDataBytes %d does not fit the NATS max payload %d with the envelope", cfg.MaxDataBytes, deps.NATS.MaxPayload())
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tp := deps.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	pubNC, own, err := publishConn(deps.NATS)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	s, err := newService(cfg, deps, pubNC, log, tp)
	if err != nil {
		if own {
			pubNC.Close()
		}
		return nil, err
	}
	s.ownPubNC = own
	return s, nil
}

// publishConn returns the connection ingest publishes on: nc itself when it
// buffers nothing while reconnecting, else a new connection with nc's
// options and nats.ReconnectBufSize(-1). A publish made while disconnected
// must fail at once rather than wait in the client's reconnect buffer: the
// request that made it has been answered with an error by the time the
// buffer is flushed, yet the event would be stored.
func publishConn(nc *nats.Conn) (*nats.Conn, bool, error) {
	if nc.Opts.ReconnectBufSize < 0 {
		return nc, false, nil
	}
	opts := nc.Opts
	opts.ReconnectBufSize = -1
	opts.Name = strings.TrimSpace(opts.Name + " publish")
	// Run waits for the server, as it does for the streams.
	opts.RetryOnFailedConnect = true
	pc, err := opts.Connect()
	if err != nil {
		return nil, false, fmt.Errorf("connect the publishing connection to nats: %w", err)
	}
	return pc, true, nil
}

// newService is New once the publishing connection is made.
func newService(cfg Config, deps Deps, pubNC *nats.Conn, log *slog.Logger, tp trace.TracerProvider) (*Service, error) {
	js, err := jetstream.New(pubNC)
	if err != nil {
		return nil, fmt.Errorf("ingest: jetstream: %w", err)
	}
	view := configwatch.New(deps.Config, log, configv1.Kind_KIND_TENANT, configv1.Kind_KIND_EVENT_TYPE)
	s := &Service{
		cfg:       cfg,
		log:       log,
		nc:        deps.NATS,
		pubNC:     pubNC,
		js:        js,
		view:      view,
		validator: validator{catalog: view, schemas: newSchemas(log), maxDataBytes: cfg.MaxDataBytes},
		publisher: &publisher{js: js, tracer: tp.Tracer(tracerName), log: log},
		prepared:  make(chan struct{}),
		inflight:  newInflight(cfg.MaxInFlight),
		limiter:   newLimiter(deps.Redis, cfg.RateLimit, log),
	}
	if s.meters, err = newMeters(metrics.Meter(deps.MeterProvider, meterName), cfg.MetricsTenantLabels); err != nil {
		return nil, err
	}
	if deps.Redis == nil {
		log.Warn("ingest has no Redis: per-tenant rate limits are not applied")
	}
	s.http = s.newHTTPServer(tp, deps.MetricsHandler)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("ingest: listen on %s: %w", cfg.HTTPAddr, err)
	}
	s.ln = ln
	return s, nil
}

// HTTPAddr is the address the HTTP listener is bound to.
func (s *Service) HTTPAddr() string { return s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully and returns nil. It
// watches the configuration, ensures the EVENTS stream and the idempotency
// bucket (trying again, with backoff, while JetStream is unavailable) and
// serves HTTP at once, answering 503 until the configuration snapshot is
// loaded and the stream and bucket are in place; it joins the NATS queue
// group only then, so publishers reach ready replicas. On shutdown it
// fails /readyz at once and leaves the queue group (NATS routes to the
// other members at once), keeps serving HTTP for DrainPeriod (load
// balancers take a while to notice), then closes the listener, lets
// requests in flight finish (up to ShutdownTimeout) and returns.
func (s *Service) Run(ctx context.Context) error {
	base := context.WithoutCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.view.Run(gctx) })
	g.Go(func() error { s.validator.schemas.compileAll(gctx, s.view); return nil })
	g.Go(func() error { return s.prepare(gctx) })
	g.Go(func() error {
		if err := s.http.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("ingest: serve HTTP: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.stopping.Store(true)
		if ctx.Err() != nil {
			s.drain()
		}
		sctx, cancel := context.WithTimeout(base, s.cfg.ShutdownTimeout)
		defer cancel()
		if err := s.http.Shutdown(sctx); err != nil {
			return fmt.Errorf("ingest: shut down HTTP: %w", err)
		}
		return nil
	})
	g.Go(func() error { return s.serveNATS(gctx, base) })
	err := g.Wait()
	if s.ownPubNC {
		s.pubNC.Close()
	}
	if err != nil {
		return err
	}
	s.log.Info("ingest stopped")
	return nil
}

// drain keeps HTTP serving for the drain period once /readyz fails, while
// load balancers notice and route elsewhere; connections are no longer kept
// alive, so clients reconnect, to other replicas.
func (s *Service) drain() {
	if s.cfg.DrainPeriod <= 0 {
		return
	}
	s.http.SetKeepAlivesEnabled(false)
	s.log.Info("ingest draining: not ready, still serving HTTP", "drain_period", s.cfg.DrainPeriod)
	time.Sleep(s.cfg.DrainPeriod)
}

// prepare ensures the EVENTS stream and the idempotency bucket, trying each
// again until it succeeds or ctx ends, then closes prepared. Only a
// permanent failure (a configuration JetStream refuses) is an error.
func (s *Service) prepare(ctx context.Context) error {
	err := streams.Retry(ctx, s.log, "ensure stream "+streams.Events, func(ctx context.Context) error {
		_, err := streams.EnsureEvents(ctx, s.js, s.cfg.Streams)
		return err
	})
	var idem *idemStore
	if err == nil {
		err = streams.Retry(ctx, s.log, "ensure bucket "+IdempotencyBucket, func(ctx context.Context) error {
			var err error
			idem, err = ensureIdemStore(ctx, s.js, s.cfg.IdempotencyTTL, s.cfg.Streams.Replicas)
			return err
		})
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("ingest: %w", err)
	}
	s.publisher.idem = idem
	close(s.prepared)
	return nil
}

// serveNATS joins the queue group once the configuration is loaded and the
// stream and bucket are ensured, and leaves it when ctx ends, waiting for
// requests in flight.
func (s *Service) serveNATS(ctx, base context.Context) error {
	for _, ready := range []<-chan struct{}{s.view.Ready(), s.prepared} {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil
		}
	}
	svc, err := s.startMicro(base)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	s.awaitSubscribed(ctx)
	s.log.Info("ingest serving", "subject", streams.IngestSubject, "queue", streams.IngestQueue, "http", s.HTTPAddr())
	<-ctx.Done()
	s.stopping.Store(true)
	if err := svc.Stop(); err != nil {
		s.log.Warn("leave the ingest queue group", "err", err)
	}
	sctx, cancel := context.WithTimeout(base, s.cfg.ShutdownTimeout)
	defer cancel()
	// Once the server has processed the unsubscribe, no new request comes;
	// requests already buffered are handled, or answered 503 once the
	// in-flight set is closed, and publishers retry another replica.
	if err := s.nc.FlushWithContext(sctx); err != nil {
		s.log.Warn("flush the unsubscribe from the ingest queue group", "err", err)
	}
	if err := s.inflight.closeAndWait(sctx); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

// awaitSubscribed sets serving once a flush proves the server has processed
// the queue subscription; from then on requests from any connection reach
// this replica. While NATS is unreachable it tries again each second: the
// client re-sends the subscription when it reconnects.
func (s *Service) awaitSubscribed(ctx context.Context) {
	for {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.nc.FlushWithContext(fctx)
		cancel()
		if err == nil {
			s.serving.Store(true)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// accept validates in and stores it: the path both transports share. It
// counts the result in pulsehooks_ingest_events_total.
func (s *Service) accept(ctx context.Context, in input) (result, error) {
	res, err := s.admit(ctx, in)
	s.published(ctx, in, res, err)
	return res, err
}

// admit is accept before the count.
func (s *Service) admit(ctx context.Context, in input) (result, error) {
	select {
	case <-s.view.Ready():
	default:
		return result{}, unavailable("configuration not loaded yet, retry", configwatch.ErrNotReady)
	}
	select {
	case <-s.prepared:
	default:
		return result{}, unavailable("stream "+streams.Events+" not ready yet, retry", nil)
	}
	ev, err := s.validator.validate(in, time.Now())
	if err != nil {
		return result{}, err
	}
	if t, ok := s.view.Tenant(ev.tenantID); ok {
		if err := s.limiter.allow(ctx, t); err != nil {
			return result{}, err
		}
	}
	return s.publisher.store(ctx, ev)
}

// logProblem logs a failed publish (client errors at debug level, the
// others as warnings) and returns it as a problem.
func (s *Service) logProblem(ctx context.Context, transport string, err error) *problem {
	p := asProblem(err)
	level := slog.LevelDebug
	if p.status >= http.StatusInternalServerError {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "publish rejected", "transport", transport, "status", p.status, "code", p.code, "err", p.Error())
	return p
}
