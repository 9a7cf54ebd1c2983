// Package standalone runs every pulsehooks service in one process on embedded
// defaults: an embedded nats-server with JetStream on a local directory, and
// an in-process Redis-compatible server unless a Redis URL is given. The
// services are wired exactly as in production — each has its own NATS
// connection and reaches the config service over real gRPC on loopback — only
// the servers they talk to are embedded.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/pulsehooks/pulsehooks/pkg/embedded"
	"github.com/pulsehooks/pulsehooks/pkg/grpcx"
	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/redistrace"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/services/config"
	"github.com/pulsehooks/pulsehooks/services/delivery"
	"github.com/pulsehooks/pulsehooks/services/fanout"
	"github.com/pulsehooks/pulsehooks/services/ingest"
)

// Config configures the standalone system.
type Config struct {
	// DataDir holds JetStream's store, the development secrets and the demo
	// tenant's key. Default "./data".
	DataDir string
	// NATSPort is the embedded nats-server's client port on 127.0.0.1; -1 picks
	// a free port. Default 4222.
	NATSPort int
	// ConfigHTTPAddr, ConfigGRPCAddr and IngestHTTPAddr are the listen
	// addresses. Defaults 127.0.0.1:8080, 127.0.0.1:9090, 127.0.0.1:8081.
	ConfigHTTPAddr, ConfigGRPCAddr, IngestHTTPAddr string
	// PublicURL is the base URL of portal links; default http://<ConfigHTTPAddr>.
	PublicURL string
	// RedisURL is the Redis to use (any form pkg/redisconn reads); empty
	// starts an in-process server whose state lives in memory only.
	RedisURL string
	// Redis refines RedisURL (Sentinel credentials, TLS…).
	Redis redisconn.Settings
	// AllowNetworks is the delivery allowlist of private ranges; the local
	// development default allows every address so endpoints on this machine work.
	AllowNetworks []netip.Prefix
	// Partitions is the number of delivery partitions of a new data
	// directory; zero keeps the count of an existing one, and gives a new one
	// DefaultPartitions.
	Partitions int
	// RetrySchedule is the delay before each delivery attempt; empty means the
	// production default (immediately, 5s, 5m, 30m, 2h, 5h, 10h, 10h).
	RetrySchedule []time.Duration
	// RetryDelay is how long a delivery waits when it cannot be handled now
	// (for example while Redis is unreachable); zero means the default.
	RetryDelay time.Duration
	// DeliveryHooks are passed to the delivery service (tests).
	DeliveryHooks delivery.Hooks
	// Demo creates a demo tenant and API key on first start.
	Demo bool
}

// DefaultPartitions is the delivery partition count of a new standalone data
// directory. One process holds every partition, so more partitions isolate
// nothing further, while each costs nats-server a consumer state file that
// it rewrites up to ten times a second under load.
const DefaultPartitions = 8

// Deps are what the standalone system is given.
type Deps struct {
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	// MeterProvider is shared by the four services; nil records nothing.
	MeterProvider metric.MeterProvider
	// MetricsHandler, if set, serves every service's instruments at GET
	// /metrics on the config service's HTTP listener: one scrape target.
	MetricsHandler http.Handler
	// MetricLabels are the opt-in labels (tenant, endpoint).
	MetricLabels metrics.Labels
	// Out receives the start-up banner; nil prints none.
	Out io.Writer
}

// Service is the running standalone system.
type Service struct {
	cfg     Config
	deps    Deps
	secrets devSecrets
	demo    demoTenant

	nats     *server.Server
	miniRed  *miniredis.Miniredis
	redis    redis.UniversalClient
	conns    []*nats.Conn
	grpcConn *grpc.ClientConn

	config   *config.Service
	ingest   *ingest.Service
	fanout   *fanout.Service
	delivery *delivery.Service
}

func (c Config) withDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.NATSPort == 0 {
		c.NATSPort = 4222
	}
	if c.ConfigHTTPAddr == "" {
		c.ConfigHTTPAddr = "127.0.0.1:8080"
	}
	if c.ConfigGRPCAddr == "" {
		c.ConfigGRPCAddr = "127.0.0.1:9090"
	}
	if c.IngestHTTPAddr == "" {
		c.IngestHTTPAddr = "127.0.0.1:8081"
	}
	if c.AllowNetworks == nil {
		c.AllowNetworks = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	}
	return c
}

// New starts the embedded servers and builds every service. On error,
// everything it started is stopped again.
func New(ctx context.Context, cfg Config, deps Deps) (_ *Service, err error) {
	cfg = cfg.withDefaults()
	s := &Service{cfg: cfg, deps: deps}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", cfg.DataDir, err)
	}
	if s.secrets, err = loadOrCreateSecrets(cfg.DataDir); err != nil {
		return nil, err
	}
	masterKey, err := decodeKey(s.secrets.MasterKey)
	if err != nil {
		return nil, err
	}
	s.nats, err = embedded.StartNATS(embedded.NATSConfig{
		Port:       cfg.NATSPort,
		StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
		ServerName: "pulsehooks-standalone",
	})
	if err != nil {
		return nil, err
	}
	if err := s.startRedis(ctx); err != nil {
		return nil, err
	}
	if deps.TracerProvider != nil {
		// Commands made inside recorded spans only (pkg/redistrace).
		if err := redistrace.Instrument(s.redis, deps.TracerProvider); err != nil {
			return nil, err
		}
	}
	if cfg.Partitions, err = s.partitions(ctx, cfg.Partitions); err != nil {
		return nil, err
	}
	s.cfg.Partitions = cfg.Partitions
	so := streams.Options{Replicas: 1, Partitions: cfg.Partitions}
	if s.config, err = config.New(ctx, config.Config{
		HTTPAddr:      cfg.ConfigHTTPAddr,
		GRPCAddr:      cfg.ConfigGRPCAddr,
		PublicURL:     cfg.PublicURL,
		AdminToken:    s.secrets.AdminToken,
		InternalToken: s.secrets.InternalToken,
		MasterKey:     masterKey,
		Replicas:      1,
		AllowNetworks: cfg.AllowNetworks,
		AttemptLogDir: filepath.Join(cfg.DataDir, "attemptlog"),
	}, config.Deps{NATS: s.conn("config"), Logger: s.logger("config"), TracerProvider: deps.TracerProvider,
		MeterProvider: deps.MeterProvider, MetricsHandler: deps.MetricsHandler}); err != nil {
		return nil, fmt.Errorf("config service: %w", err)
	}
	if s.grpcConn, err = grpcx.Dial(s.config.GRPCAddr(), s.secrets.InternalToken, deps.TracerProvider); err != nil {
		return nil, err
	}
	client := grpcx.ConfigClient(s.grpcConn)
	if s.ingest, err = ingest.New(ctx, ingest.Config{
		HTTPAddr:      cfg.IngestHTTPAddr,
		OperatorToken: s.secrets.OperatorToken,
		Streams:       so,
		// One process behind no load balancer: nothing to drain for.
		DrainPeriod:         -1,
		MetricsTenantLabels: deps.MetricLabels.Tenant,
	}, ingest.Deps{NATS: s.conn("ingest"), Config: client, Redis: s.redis, Logger: s.logger("ingest"), TracerProvider: deps.TracerProvider,
		MeterProvider: deps.MeterProvider}); err != nil {
		return nil, fmt.Errorf("ingest service: %w", err)
	}
	if s.fanout, err = fanout.New(ctx, fanout.Config{Streams: so},
		fanout.Deps{NATS: s.conn("fanout"), Config: client, Logger: s.logger("fanout"), TracerProvider: deps.TracerProvider,
			MeterProvider: deps.MeterProvider}); err != nil {
		return nil, fmt.Errorf("fanout service: %w", err)
	}
	if s.delivery, err = delivery.New(ctx, delivery.Config{
		Streams:       so,
		AllowNetworks: cfg.AllowNetworks,
		RelayURL:      s.config.RelayURL(), // relay endpoints work whatever AllowNetworks says
		RetryDelay:    cfg.RetryDelay,
		Schedule:      cfg.RetrySchedule,
		Hooks:         cfg.DeliveryHooks,

		MetricsEndpointLabels: deps.MetricLabels.Endpoint,
	}, delivery.Deps{NATS: s.conn("delivery"), Redis: s.redis, Config: client, Logger: s.logger("delivery"), TracerProvider: deps.TracerProvider,
		MeterProvider: deps.MeterProvider}); err != nil {
		return nil, fmt.Errorf("delivery service: %w", err)
	}
	return s, nil
}

// partitions resolves the partition count: a configured one is used as it
// is (the services refuse one that differs from an existing DELIVERIES
// stream's); otherwise an existing stream keeps its own and a new one gets
// DefaultPartitions.
func (s *Service) partitions(ctx context.Context, configured int) (int, error) {
	if configured > 0 {
		return configured, nil
	}
	nc, err := nats.Connect(s.nats.ClientURL(), nats.Name("pulsehooks-standalone-setup"))
	if err != nil {
		return 0, fmt.Errorf("connect to embedded nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("jetstream: %w", err)
	}
	existing, err := streams.PartitionsOf(ctx, js)
	switch {
	case err == nil:
		return existing, nil
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return DefaultPartitions, nil
	default:
		return 0, fmt.Errorf("delivery partitions: %w", err)
	}
}

func (s *Service) startRedis(ctx context.Context) error {
	url := s.cfg.RedisURL
	if url == "" {
		m, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			return err
		}
		s.miniRed = m
		url = "redis://" + m.Addr()
	}
	rdb, opts, err := redisconn.New(url, s.cfg.Redis)
	if err != nil {
		return err
	}
	s.redis = rdb
	if err := s.redis.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis (%s): %w", opts, err)
	}
	return nil
}

// conn opens a NATS connection for one service; Connect only fails when the
// embedded server is gone, in which case New has already failed.
func (s *Service) conn(name string) *nats.Conn {
	nc, err := natsx.Connect(s.nats.ClientURL(), "pulsehooks-"+name, s.logger(name))
	if err != nil {
		s.logger(name).Error("connect to embedded nats", "err", err)
		nc = nil
	}
	if nc != nil {
		s.conns = append(s.conns, nc)
	}
	return nc
}

func (s *Service) logger(name string) *slog.Logger {
	return s.deps.Logger.With("component", name)
}

// Run runs every service until ctx ends, then shuts them down in order —
// intake first, the config service last — and stops the embedded servers.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	if s.cfg.Demo {
		if err := s.ensureDemo(ctx); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.config.Run(gctx) })
	g.Go(func() error { return s.ingest.Run(gctx) })
	g.Go(func() error { return s.fanout.Run(gctx) })
	g.Go(func() error { return s.delivery.Run(gctx) })
	if s.deps.Out != nil {
		g.Go(func() error {
			// The banner's commands work as soon as it is printed.
			if s.waitReady(gctx) {
				s.printBanner(s.deps.Out)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// waitReady waits until ingest, fanout and delivery are ready, and reports
// false if ctx ended first.
func (s *Service) waitReady(ctx context.Context) bool {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !s.ingest.Ready() || !s.fanout.Ready() || !s.delivery.Ready() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// close releases everything New opened; it is safe on a partly built Service.
func (s *Service) close() {
	if s.grpcConn != nil {
		_ = s.grpcConn.Close()
	}
	for _, nc := range s.conns {
		_ = nc.Drain()
	}
	if s.redis != nil {
		_ = s.redis.Close()
	}
	if s.miniRed != nil {
		s.miniRed.Close()
	}
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
}

// NATSURL is the embedded nats-server's client URL.
func (s *Service) NATSURL() string { return s.nats.ClientURL() }

// ConfigURL is the base URL of the REST API, operator API and portal.
func (s *Service) ConfigURL() string { return "http://" + s.config.HTTPAddr() }

// IngestURL is the base URL of the ingest HTTP API.
func (s *Service) IngestURL() string { return "http://" + s.ingest.HTTPAddr() }

// ConfigGRPCAddr is the config service's gRPC address.
func (s *Service) ConfigGRPCAddr() string { return s.config.GRPCAddr() }

// AdminToken is the operator API token.
func (s *Service) AdminToken() string { return s.secrets.AdminToken }

// OperatorToken is the token that may publish events over HTTP.
func (s *Service) OperatorToken() string { return s.secrets.OperatorToken }

// DemoAPIKey is the demo tenant's API key (after Run created it).
func (s *Service) DemoAPIKey() string { return s.demo.APIKey }

// DemoTenantID is the demo tenant's id.
func (s *Service) DemoTenantID() string { return s.demo.TenantID }

// RedisInProcess reports whether the in-process Redis is in use.
func (s *Service) RedisInProcess() bool { return s.miniRed != nil }

func decodeKey(b64 string) ([]byte, error) {
	k, err := decodeBase64(b64)
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("master key in secrets.json must be 32 bytes of base64")
	}
	return k, nil
}
