// Command fanout runs the pulsehooks fanout service: it consumes the EVENTS
// stream and publishes one delivery per matching endpoint to DELIVERIES.
//
// Environment:
//
//	PULSEHOOKS_NATS_URL           NATS server URL (default nats://127.0.0.1:4222)
//	PULSEHOOKS_CONFIG_GRPC        config service gRPC address (default 127.0.0.1:9090)
//	PULSEHOOKS_INTERNAL_TOKEN     bearer token for the config service, if it requires one
//	PULSEHOOKS_PARTITIONS         delivery partitions, fixed per deployment (default 64)
//	PULSEHOOKS_REPLICAS           stream replicas (default 1)
//	PULSEHOOKS_FANOUT_CONCURRENCY events fanned out at once (default 64)
//	PULSEHOOKS_HEALTH_ADDR        /healthz and /readyz listener (default :8082, "off" disables)
//	PULSEHOOKS_LOG_LEVEL          debug, info, warn or error (default info)
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

	"golang.org/x/sync/errgroup"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/grpcx"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/telemetry"
	"github.com/pulsehooks/pulsehooks/services/fanout"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// flushTimeout bounds the flush of pending acks when the service stops.
const flushTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// settings are what the environment configures.
type settings struct {
	natsURL       string
	configAddr    string
	internalToken string
	healthAddr    string
	logLevel      string
	service       fanout.Config
}

func loadSettings(env *envconf.Reader) (settings, error) {
	s := settings{
		natsURL:       env.String("nats://127.0.0.1:4222", "PULSEHOOKS_NATS_URL"),
		configAddr:    env.String("127.0.0.1:9090", "PULSEHOOKS_CONFIG_GRPC"),
		internalToken: env.String("", "PULSEHOOKS_INTERNAL_TOKEN"),
		healthAddr:    env.String(":8082", "PULSEHOOKS_HEALTH_ADDR"),
		logLevel:      env.String("info", "PULSEHOOKS_LOG_LEVEL"),
		service: fanout.Config{
			Streams: streams.Options{
				Partitions: env.Int("PULSEHOOKS_PARTITIONS", streams.DefaultPartitions),
				Replicas:   env.Int("PULSEHOOKS_REPLICAS", 1),
			},
			Concurrency: env.Int("PULSEHOOKS_FANOUT_CONCURRENCY", fanout.DefaultConcurrency),
		},
	}
	if s.healthAddr == "off" {
		s.healthAddr = ""
	}
	if err := env.Err(); err != nil {
		return settings{}, err
	}
	return s, nil
}

func run(ctx context.Context) (err error) {
	s, err := loadSettings(envconf.New())
	if err != nil {
		return err
	}
	tp, shutdown, err := telemetry.Setup(ctx, "pulsehooks-fanout", version)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() { err = errors.Join(err, shutdown(context.WithoutCancel(ctx))) }()
	log := telemetry.NewLogger(os.Stderr, s.logLevel, "fanout")

	nc, err := natsx.Connect(s.natsURL, "pulsehooks-fanout", log)
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

	svc, err := fanout.New(ctx, s.service, fanout.Deps{
		NATS:           nc,
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
