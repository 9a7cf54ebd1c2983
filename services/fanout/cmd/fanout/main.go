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
//	PULSEHOOKS_HEALTH_ADDR        /healthz, /readyz and /metrics listener (default :8082, "off" disables)
//	PULSEHOOKS_LOG_LEVEL          debug, info, warn or error (default info)
//	PULSEHOOKS_PPROF_ADDR         net/http/pprof listener, e.g. 127.0.0.1:6060 (default off)
//
// Tracing and metrics are configured by the standard OTEL_* variables;
// PULSEHOOKS_METRICS=off turns metrics off (see pkg/metrics).
package main

import (
	"context"
	"errors"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/process"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/services/fanout"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { process.Main("fanout", run) }

// settings are what the environment configures.
type settings struct {
	natsURL       string
	configAddr    string
	internalToken string
	healthAddr    string
	logLevel      string
	pprofAddr     string
	service       fanout.Config
}

func loadSettings(env *envconf.Reader) (settings, error) {
	s := settings{
		natsURL:       env.String("nats://127.0.0.1:4222", "PULSEHOOKS_NATS_URL"),
		configAddr:    env.String("127.0.0.1:9090", "PULSEHOOKS_CONFIG_GRPC"),
		internalToken: env.String("", "PULSEHOOKS_INTERNAL_TOKEN"),
		healthAddr:    env.String(":8082", "PULSEHOOKS_HEALTH_ADDR"),
		logLevel:      env.String("info", "PULSEHOOKS_LOG_LEVEL"),
		pprofAddr:     env.String("", "PULSEHOOKS_PPROF_ADDR"),
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
	proc, err := process.Start(ctx, process.Options{
		Service: "fanout", Version: version, NATSURL: s.natsURL, LogLevel: s.logLevel,
		PprofAddr: s.pprofAddr,
	})
	if err != nil {
		return err
	}
	// Sends the last acks and naks before closing.
	defer func() { err = errors.Join(err, proc.Close(context.WithoutCancel(ctx))) }()
	cfg, err := proc.DialConfig(s.configAddr, s.internalToken)
	if err != nil {
		return err
	}

	// New waits for JetStream; the probes answer meanwhile (not ready).
	return health.RunStarting(ctx, s.healthAddr, func(ctx context.Context) (*fanout.Service, error) {
		return fanout.New(ctx, s.service, fanout.Deps{
			NATS:           proc.NATS,
			Config:         cfg,
			Logger:         proc.Logger,
			TracerProvider: proc.TracerProvider,
			MeterProvider:  proc.Metrics.MeterProvider(),
		})
	}, health.WithMetrics(proc.Metrics.Handler()))
}
