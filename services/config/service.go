// Package config is the config service of pulsehooks. It owns tenants, API
// keys, endpoints, the event-type catalog and portal sessions, stored in
// JetStream KV buckets, and serves them over an operator API, the tenant REST
// API, the portal, and the internal gRPC ConfigService whose Watch stream
// keeps the other services' in-memory copies current.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/secretbox"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	"github.com/pulsehooks/pulsehooks/services/config/attemptlog"
	"github.com/pulsehooks/pulsehooks/services/config/portal"
	"github.com/pulsehooks/pulsehooks/services/config/relay"
)

// Service tuning.
const (
	// watchBuffer is how many changes a Watch subscriber may fall behind
	// before it is disconnected.
	watchBuffer = 16384
	// shutdownTimeout bounds the graceful part of shutdown.
	shutdownTimeout = 10 * time.Second
)

// Service is the config service: HTTP and gRPC servers over the KV store.
type Service struct {
	cfg   Config
	nc    *nats.Conn
	log   *slog.Logger
	tp    trace.TracerProvider
	store *Store
	state *state
	// portal serves /portal (package portal).
	portal *portal.Portal

	// The attempt log: this replica's index of EVENTS and ATTEMPTS, and what
	// resends and recover requests use.
	js      jetstream.JetStream
	alog    *attemptlog.Store
	indexer *attemptlog.Indexer
	replay  *replayer
	// relay serves `pulsehooks listen` (relay_routes.go).
	relay *relay.Relay
	// live has the work loops /healthz checks (the attempt-log indexer).
	live *health.Liveness

	httpLn, grpcLn net.Listener
	httpSrv        *http.Server
	grpcSrv        *grpc.Server

	ready        atomic.Bool
	stopping     chan struct{}
	stopOnce     sync.Once
	listenerOnce sync.Once
}

// New checks the configuration, creates or updates the KV buckets, seeds the
// event-type catalog on the first start, and binds both listeners. It starts
// no goroutines: Run serves. The Store works from the moment New returns.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps, err = deps.check(); err != nil {
		return nil, err
	}
	box, err := secretbox.New(cfg.MasterKey)
	if err != nil {
		return nil, fmt.Errorf("config service: %w", err)
	}
	js, err := jetstream.New(deps.NATS)
	if err != nil {
		return nil, fmt.Errorf("config service: jetstream: %w", err)
	}
	st := newState(watchBuffer)
	// JetStream may be slow to come up (a cluster electing leaders, a
	// restarting server): wait for it rather than exit.
	var (
		store  *Store
		replay *replayer
	)
	err = streams.Retry(ctx, deps.Logger, "ensure key-value buckets", func(ctx context.Context) error {
		var err error
		if store, err = openStore(ctx, js, cfg, st, box, deps.Logger); err != nil {
			return err
		}
		if err := store.seedCatalog(ctx); err != nil {
			return err
		}
		replay, err = newReplayer(ctx, js, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("config service: %w", err)
	}
	alog, err := attemptlog.Open(attemptlog.Options{Dir: cfg.AttemptLogDir, Retention: cfg.AttemptRetention, Logger: deps.Logger, JobField: cfg.JobIDField})
	if err != nil {
		return nil, fmt.Errorf("config service: attempt log (PULSEHOOKS_ATTEMPT_LOG_DIR): %w", err)
	}
	s := &Service{
		cfg:      cfg,
		nc:       deps.NATS,
		log:      deps.Logger,
		tp:       deps.TracerProvider,
		store:    store,
		state:    st,
		js:       js,
		alog:     alog,
		indexer:  attemptlog.NewIndexer(alog, js, deps.Logger),
		live:     health.NewLiveness(cfg.StuckAfter),
		replay:   replay,
		stopping: make(chan struct{}),
	}
	s.indexer.ReportTo(s.live)
	if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		_ = alog.Close()
		return nil, fmt.Errorf("config service: listen for HTTP on %s: %w", cfg.HTTPAddr, err)
	}
	if s.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		_ = s.httpLn.Close()
		_ = alog.Close()
		return nil, fmt.Errorf("config service: listen for gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	store.publicURL = defaultPublicURL(s.httpLn.Addr())
	if cfg.PublicURL != "" {
		store.publicURL, _ = parsePublicURL(cfg.PublicURL) // checked by withDefaults
	}
	if store.relayBase, err = parseRelayBase(cfg, store.publicURL.String()); err == nil {
		s.relay, err = newRelay(s)
	}
	if err != nil {
		_ = s.httpLn.Close()
		_ = s.grpcLn.Close()
		_ = alog.Close()
		return nil, fmt.Errorf("config service: relay: %w", err)
	}
	if s.portal, err = s.newPortal(); err != nil {
		_ = s.httpLn.Close()
		_ = s.grpcLn.Close()
		_ = alog.Close()
		return nil, fmt.Errorf("config service: %w", err)
	}
	s.httpSrv = &http.Server{
		Handler:           withMetrics(s.routes(), deps.MetricsHandler),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn),
	}
	auth := bearerAuth(cfg.InternalToken)
	s.grpcSrv = grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(deps.TracerProvider),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)),
		grpc.ChainUnaryInterceptor(auth.unary),
		grpc.ChainStreamInterceptor(auth.stream),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	configv1.RegisterConfigServiceServer(s.grpcSrv, &grpcServer{state: st, store: store, stopping: s.stopping})
	if err := observeAttemptLogLag(metrics.Meter(deps.MeterProvider, meterName), js, alog, s.indexer, metrics.ServerReadInterval); err != nil {
		_ = s.httpLn.Close()
		_ = s.grpcLn.Close()
		_ = alog.Close()
		return nil, fmt.Errorf("config service: %w", err)
	}
	return s, nil
}

// Store returns the service's store, for in-process callers such as the
// standalone binary creating its demo tenant.
func (s *Service) Store() *Store { return s.store }

// HTTPAddr returns the bound address of the HTTP server.
func (s *Service) HTTPAddr() string { return s.httpLn.Addr().String() }

// GRPCAddr returns the bound address of the gRPC server.
func (s *Service) GRPCAddr() string { return s.grpcLn.Addr().String() }

// RelayURL returns the base URL of relay endpoint URLs, which delivery
// workers must be given as their RelayURL.
func (s *Service) RelayURL() string { return s.store.relayBase.String() }

// PublicURL returns the base URL of portal links.
func (s *Service) PublicURL() *url.URL {
	u := *s.store.publicURL
	return &u
}

// Run loads the configuration from the KV buckets, indexes the attempt log,
// serves HTTP and gRPC until ctx ends, then shuts down gracefully: not
// ready, Watch streams ended (clients move to another replica), requests
// drained, the attempt log closed. It returns nil when ctx ends and an error
// when serving or the KV watchers fail.
func (s *Service) Run(ctx context.Context) (err error) {
	defer func() {
		if cerr := s.alog.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.runWatchers(gctx) })
	g.Go(func() error { return s.indexer.Run(gctx) })
	if err := s.state.waitLoaded(gctx); err != nil {
		s.closeListeners()
		return g.Wait()
	}
	s.ready.Store(true)
	s.log.InfoContext(ctx, "config service serving", "http", s.HTTPAddr(), "grpc", s.GRPCAddr(), "public_url", s.store.publicURL.String())
	g.Go(func() error {
		if err := s.httpSrv.Serve(s.httpLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve HTTP: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.grpcSrv.Serve(s.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve gRPC: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		return s.shutdown(context.WithoutCancel(ctx))
	})
	return g.Wait()
}

// shutdown stops both servers: not ready first, then Watch streams ended,
// then in-flight requests drained for up to shutdownTimeout.
func (s *Service) shutdown(ctx context.Context) error {
	s.ready.Store(false)
	s.stopOnce.Do(func() { close(s.stopping) })
	s.relay.Shutdown()
	ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()

	grpcDone := make(chan struct{})
	go func() {
		s.grpcSrv.GracefulStop()
		close(grpcDone)
	}()
	httpErr := s.httpSrv.Shutdown(ctx)
	if httpErr != nil {
		_ = s.httpSrv.Close()
		httpErr = fmt.Errorf("drain HTTP requests: %w", httpErr)
	}
	select {
	case <-grpcDone:
	case <-ctx.Done():
		s.grpcSrv.Stop()
		<-grpcDone
	}
	s.closeListeners()
	s.log.InfoContext(ctx, "config service stopped")
	return httpErr
}

// closeListeners closes both listeners; servers that never served them do
// not close them.
func (s *Service) closeListeners() {
	s.listenerOnce.Do(func() {
		_ = s.httpLn.Close()
		_ = s.grpcLn.Close()
	})
}
