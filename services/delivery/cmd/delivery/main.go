// Command delivery runs a pulsehooks delivery worker: it pulls deliveries
// from the DELIVERIES stream, signs and POSTs each to its endpoint, and
// records every attempt in the ATTEMPTS stream.
//
// Environment:
//
//	PULSEHOOKS_NATS_URL        NATS server URL (default nats://127.0.0.1:4222)
//	PULSEHOOKS_REDIS_URL       Redis URL, redis://… or rediss://… (falls back to REDIS_URL; required)
//	PULSEHOOKS_CONFIG_GRPC     config service gRPC address (default 127.0.0.1:9090)
//	PULSEHOOKS_INTERNAL_TOKEN  bearer token for the config service, if it requires one
//	PULSEHOOKS_PARTITIONS      delivery partitions, fixed per deployment (default 64)
//	PULSEHOOKS_REPLICAS        stream replicas (default 1)
//	PULSEHOOKS_ALLOW_NETWORKS  comma-separated CIDR prefixes endpoints may reach although private
//	                           (for development; "private" allows all)
//	PULSEHOOKS_HEALTH_ADDR     /healthz and /readyz listener (default :8083, "off" disables)
//	PULSEHOOKS_LOG_LEVEL       debug, info, warn or error (default info)
//
// Tracing is configured by the standard OTEL_* variables.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/grpcx"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/telemetry"
	"github.com/pulsehooks/pulsehooks/services/delivery"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// flushTimeout bounds the flush of pending acks and naks when the worker stops.
const flushTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "delivery:", err)
		os.Exit(1)
	}
}

// settings are what the environment configures.
type settings struct {
	natsURL       string
	redisURL      string
	configAddr    string
	internalToken string
	healthAddr    string
	logLevel      string
	service       delivery.Config
}

func loadSettings(env *envconf.Reader) (settings, error) {
	s := settings{
		natsURL:       env.String("nats://127.0.0.1:4222", "PULSEHOOKS_NATS_URL"),
		redisURL:      env.String("", "PULSEHOOKS_REDIS_URL", "REDIS_URL"),
		configAddr:    env.String("127.0.0.1:9090", "PULSEHOOKS_CONFIG_GRPC"),
		internalToken: env.String("", "PULSEHOOKS_INTERNAL_TOKEN"),
		healthAddr:    env.String(":8083", "PULSEHOOKS_HEALTH_ADDR"),
		logLevel:      env.String("info", "PULSEHOOKS_LOG_LEVEL"),
		service: delivery.Config{
			Streams: streams.Options{
				Partitions: env.Int("PULSEHOOKS_PARTITIONS", streams.DefaultPartitions),
				Replicas:   env.Int("PULSEHOOKS_REPLICAS", 1),
			},
			AllowNetworks: env.Networks("PULSEHOOKS_ALLOW_NETWORKS"),
			UserAgent:     "pulsehooks/" + version,
		},
	}
	if s.healthAddr == "off" {
		s.healthAddr = ""
	}
	err := env.Err()
	if s.redisURL == "" {
		err = errors.Join(err, errors.New("PULSEHOOKS_REDIS_URL (or REDIS_URL) is required"))
	}
	if err != nil {
		return settings{}, err
	}
	return s, nil
}

func run(ctx context.Context) (err error) {
	s, err := loadSettings(envconf.New())
	if err != nil {
		return err
	}
	tp, shutdown, err := telemetry.Setup(ctx, "pulsehooks-delivery", version)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() { err = errors.Join(err, shutdown(context.WithoutCancel(ctx))) }()
	log := telemetry.NewLogger(os.Stderr, s.logLevel, "delivery")

	ropts, err := redis.ParseURL(s.redisURL)
	if err != nil {
		return fmt.Errorf("PULSEHOOKS_REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(ropts)
	defer func() {
		if cerr := rdb.Close(); cerr != nil {
			log.Warn("close redis client", "err", cerr)
		}
	}()
	nc, err := natsx.Connect(s.natsURL, "pulsehooks-delivery", log)
	if err != nil {
		return err
	}
	defer func() {
		// Send the last acks and naks before closing.
		if ferr := nc.FlushTimeout(flushTimeout); ferr != nil {
			log.Warn("flush nats connection", "err", ferr)
		}
		nc.Close()
	}()
	conn, err := grpcx.Dial(s.configAddr, s.internalToken, tp)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := conn.Close(); cerr != nil {
			log.Warn("close config service connection", "err", cerr)
		}
	}()

	svc, err := delivery.New(ctx, s.service, delivery.Deps{
		NATS:           nc,
		Redis:          rdb,
		Config:         grpcx.ConfigClient(conn),
		Logger:         log,
		TracerProvider: tp,
	})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if s.healthAddr != "" {
		health, err := listenHealth(s.healthAddr, svc.Ready)
		if err != nil {
			return err
		}
		g.Go(func() error { return health.serve(gctx) })
	}
	g.Go(func() error { return svc.Run(gctx) })
	return g.Wait()
}
