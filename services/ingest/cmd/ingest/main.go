// Command ingest runs the pulsehooks ingest service: it accepts job events
// from Pulse's job processors over NATS (pulsehooks.ingest.v1.publish) and
// HTTP (POST /v1/events) and stores them in the EVENTS stream.
//
// Environment:
//
//	PULSEHOOKS_NATS_URL        NATS server URL (default nats://127.0.0.1:4222)
//	PULSEHOOKS_CONFIG_GRPC     config service gRPC address (default 127.0.0.1:9090)
//	PULSEHOOKS_INTERNAL_TOKEN  bearer token for the config service, if it requires one
//	PULSEHOOKS_HTTP_ADDR       HTTP listen address (default :8081)
//	PULSEHOOKS_INGEST_TOKEN    the ingest token (pho_…), which HTTP publishers send as "Authorization: Bearer …"
//	                           (required; PULSEHOOKS_OPERATOR_TOKEN, its former name, is still read)
//	PULSEHOOKS_REPLICAS        stream and bucket replicas (default 1)
//	PULSEHOOKS_REDIS_URL       Redis URL for the per-tenant rate limits (falls back to REDIS_URL;
//	                           unset: no rate limits); one node, redis+sentinel:// or redis+cluster://
//	                           with the optional PULSEHOOKS_REDIS_* refinements (pkg/redisconn)
//	PULSEHOOKS_QUOTA_INGEST_EVENTS_PER_SECOND  events/s per tenant (default 1000; -1 no limit)
//	PULSEHOOKS_QUOTA_INGEST_BURST              events at once above that rate (default 2000)
//	PULSEHOOKS_DRAIN_PERIOD    how long HTTP keeps serving after SIGTERM while /readyz fails
//	                           (default 5s; 0s: none)
//	PULSEHOOKS_LOG_LEVEL       debug, info, warn or error (default info)
//	PULSEHOOKS_PPROF_ADDR      net/http/pprof listener, e.g. 127.0.0.1:6060 (default off)
//
// Tracing and metrics are configured by the standard OTEL_* variables;
// metrics (GET /metrics on the HTTP listener) also by PULSEHOOKS_METRICS
// (off: none) and PULSEHOOKS_METRICS_TENANT_LABELS (true: a tenant label on
// the events counter); see pkg/metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/process"
	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/redistrace"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/services/ingest"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { process.Main("ingest", run) }

// settings are what the environment configures.
type settings struct {
	natsURL       string
	configAddr    string
	internalToken string
	logLevel      string
	pprofAddr     string
	redisURL      string
	redis         *redisconn.Options
	service       ingest.Config
}

func loadSettings(env *envconf.Reader) (settings, error) {
	s := settings{
		natsURL:       env.String("nats://127.0.0.1:4222", "PULSEHOOKS_NATS_URL"),
		configAddr:    env.String("127.0.0.1:9090", "PULSEHOOKS_CONFIG_GRPC"),
		internalToken: env.String("", "PULSEHOOKS_INTERNAL_TOKEN"),
		logLevel:      env.String("info", "PULSEHOOKS_LOG_LEVEL"),
		pprofAddr:     env.String("", "PULSEHOOKS_PPROF_ADDR"),
		redisURL:      env.String("", "PULSEHOOKS_REDIS_URL", "REDIS_URL"),
		service: ingest.Config{
			HTTPAddr:      env.String(ingest.DefaultHTTPAddr, "PULSEHOOKS_HTTP_ADDR"),
			OperatorToken: ingestToken(env),
			DrainPeriod:   drainPeriod(env.Duration("PULSEHOOKS_DRAIN_PERIOD", ingest.DefaultDrainPeriod)),
			Streams:       streams.Options{Replicas: env.Int("PULSEHOOKS_REPLICAS", 1)},
			RateLimit: ingest.RateLimit{
				EventsPerSecond: env.Int("PULSEHOOKS_QUOTA_INGEST_EVENTS_PER_SECOND", ingest.DefaultEventsPerSecond),
				Burst:           env.Int("PULSEHOOKS_QUOTA_INGEST_BURST", ingest.DefaultBurst),
			},
		},
	}
	err := env.Err()
	if s.redisURL != "" {
		ropts, rerr := redisconn.Parse(s.redisURL, redisconn.SettingsFromEnv(env))
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("PULSEHOOKS_REDIS_URL: %w", rerr))
		}
		s.redis = ropts
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
	var rdb redis.UniversalClient // nil: no rate limits
	if s.redis != nil {
		rdb = s.redis.NewClient()
		defer func() { err = errors.Join(err, rdb.Close()) }()
	}
	proc, err := process.Start(ctx, process.Options{
		Service: "ingest", Version: version, NATSURL: s.natsURL, LogLevel: s.logLevel,
		PprofAddr: s.pprofAddr,
	})
	if err != nil {
		return err
	}
	// Sends the last replies before closing.
	defer func() { err = errors.Join(err, proc.Close(context.WithoutCancel(ctx))) }()
	if rdb != nil {
		if err := redistrace.Instrument(rdb, proc.TracerProvider); err != nil {
			return err
		}
	}
	cfg, err := proc.DialConfig(s.configAddr, s.internalToken)
	if err != nil {
		return err
	}

	s.service.MetricsTenantLabels = proc.Metrics.Labels.Tenant
	svc, err := ingest.New(ctx, s.service, ingest.Deps{
		NATS:           proc.NATS,
		Config:         cfg,
		Logger:         proc.Logger,
		TracerProvider: proc.TracerProvider,
		Redis:          rdb,
		MeterProvider:  proc.Metrics.MeterProvider(),
		MetricsHandler: proc.Metrics.Handler(),
	})
	if err != nil {
		return err
	}
	proc.Logger.Info("ingest starting", "version", version, "http", svc.HTTPAddr())
	return svc.Run(ctx)
}

// ingestToken reads the ingest token from PULSEHOOKS_INGEST_TOKEN, or from
// PULSEHOOKS_OPERATOR_TOKEN, the name it had before (the operator API token
// is config's PULSEHOOKS_ADMIN_TOKEN, so the old name misled).
func ingestToken(env *envconf.Reader) string {
	if v := env.String("", "PULSEHOOKS_INGEST_TOKEN", "PULSEHOOKS_OPERATOR_TOKEN"); v != "" {
		return v
	}
	return env.Required("PULSEHOOKS_INGEST_TOKEN")
}

// drainPeriod maps PULSEHOOKS_DRAIN_PERIOD=0s to Config's "none" (negative).
func drainPeriod(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
