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

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/process"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/services/delivery"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { process.Main("delivery", run) }

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
	ropts, err := redis.ParseURL(s.redisURL)
	if err != nil {
		return fmt.Errorf("PULSEHOOKS_REDIS_URL: %w", err)
	}
	proc, err := process.Start(ctx, process.Options{
		Service: "delivery", Version: version, NATSURL: s.natsURL, LogLevel: s.logLevel,
	})
	if err != nil {
		return err
	}
	// Sends the last acks and naks before closing.
	defer func() { err = errors.Join(err, proc.Close(context.WithoutCancel(ctx))) }()
	rdb := redis.NewClient(ropts)
	defer func() {
		if cerr := rdb.Close(); cerr != nil {
			proc.Logger.Warn("close redis client", "err", cerr)
		}
	}()
	cfg, err := proc.DialConfig(s.configAddr, s.internalToken)
	if err != nil {
		return err
	}

	svc, err := delivery.New(ctx, s.service, delivery.Deps{
		NATS:           proc.NATS,
		Redis:          rdb,
		Config:         cfg,
		Logger:         proc.Logger,
		TracerProvider: proc.TracerProvider,
	})
	if err != nil {
		return err
	}
	return health.Run(ctx, s.healthAddr, svc.Ready, svc.Run)
}
