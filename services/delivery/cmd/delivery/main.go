// Command delivery runs a pulsehooks delivery worker: it pulls deliveries
// from the DELIVERIES stream, signs and POSTs each to its endpoint, and
// records every attempt in the ATTEMPTS stream.
//
// Environment:
//
//	PULSEHOOKS_NATS_URL        NATS server URL (default nats://127.0.0.1:4222)
//	PULSEHOOKS_REDIS_URL       Redis URL (falls back to REDIS_URL; required): redis://host:6379/0 or rediss://…
//	                           for one node, redis+sentinel://s1:26379,s2:26379/<master>/0 for Sentinel,
//	                           redis+cluster://n1:6379,n2:6379 for a Redis Cluster (pkg/redisconn)
//	PULSEHOOKS_REDIS_SENTINEL_MASTER, _SENTINEL_USERNAME, _SENTINEL_PASSWORD, _CLUSTER_ADDRS,
//	PULSEHOOKS_REDIS_TLS_CA_FILE, _TLS_SERVER_NAME  optional refinements of that URL
//	PULSEHOOKS_CONFIG_GRPC     config service gRPC address (default 127.0.0.1:9090)
//	PULSEHOOKS_INTERNAL_TOKEN  bearer token for the config service, if it requires one
//	PULSEHOOKS_PARTITIONS      delivery partitions, fixed per deployment (default 64)
//	PULSEHOOKS_REPLICAS        stream replicas (default 1)
//	PULSEHOOKS_OPERATIONAL_RETENTION how long the OPERATIONAL stream keeps operational events (default 168h)
//	PULSEHOOKS_ALLOW_NETWORKS  comma-separated CIDR prefixes endpoints may reach although private
//	                           (for development; "private" allows all)
//	PULSEHOOKS_RELAY_URL       base URL of the config service's relay route, e.g. http://pulsehooks-config:8080;
//	                           exactly its /relay/v1/<endpoint> URLs are reached without the SSRF policy
//	PULSEHOOKS_HEALTH_ADDR     /healthz, /readyz and /metrics listener (default :8083, "off" disables)
//	PULSEHOOKS_STUCK_AFTER     /healthz fails when a pull loop or the scheduler makes no progress this long with work pending (default 2m)
//	PULSEHOOKS_RETRY_SCHEDULE  delay before each attempt (default 0s,5s,5m,30m,2h,5h,10h,10h)
//	PULSEHOOKS_RETRY_JITTER    ± fraction of each retry delay (default 0.2, at most 0.5)
//	PULSEHOOKS_DISABLE_AFTER   disable an endpoint failing this long without a success (default 120h)
//	PULSEHOOKS_FAILING_AFTER   failed attempts before message.attempt.failing (default 3)
//	PULSEHOOKS_DEFAULT_TIMEOUT attempt timeout when the endpoint sets none (default 15s)
//	PULSEHOOKS_LANE_CONCURRENCY attempts in flight per endpoint (default 8)
//	PULSEHOOKS_LANE_QUEUE      deliveries waiting per endpoint before they are put off (default 64)
//	PULSEHOOKS_LANE_MAX_WAIT   longest wait in a lane before a delivery is put off (default 5s)
//	PULSEHOOKS_SHUTDOWN_GRACE  how long shutdown (or a partition moving) waits for attempts in flight before cutting them short as timeouts to retry (default 10s)
//	PULSEHOOKS_MAX_IN_FLIGHT   attempts in flight in the worker across all endpoints (default 1024)
//	PULSEHOOKS_ACK_WAIT        ack wait of the partition consumers (default 10s)
//	PULSEHOOKS_LEASE_TTL       life of a worker's membership and partition leases without renewal (default 5s)
//	PULSEHOOKS_CLAIM_LEASE     lease on claimed retry-schedule items (default 30s)
//	PULSEHOOKS_CLAIM_BATCH     retry-schedule items claimed at once (default 500)
//	PULSEHOOKS_RETRY_POLL_INTERVAL longest wait between looks at the schedule (default 250ms)
//	PULSEHOOKS_DEFER_DELAY     earliest return of a delivery put off by a full lane (default 1s)
//	PULSEHOOKS_RETRY_DELAY     wait before retrying what cannot be handled now, e.g. Redis down (default 5s)
//	PULSEHOOKS_REDIS_REPLICA_WAIT longest wait for a Redis replica to confirm a retry-schedule write when
//	                           the primary has replicas (default 500ms; negative: never wait; at most 2s)
//	PULSEHOOKS_LOG_LEVEL       debug, info, warn or error (default info)
//	PULSEHOOKS_PPROF_ADDR      net/http/pprof listener, e.g. 127.0.0.1:6060 (default off)
//
// Tracing and metrics are configured by the standard OTEL_* variables;
// metrics also by PULSEHOOKS_METRICS (off: none), PULSEHOOKS_METRICS_ENDPOINT_LABELS
// (true: an endpoint label on the attempt counter); see pkg/metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/process"
	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/redistrace"
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
	redis         *redisconn.Options
	configAddr    string
	internalToken string
	healthAddr    string
	logLevel      string
	pprofAddr     string
	stuckAfter    time.Duration
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
		pprofAddr:     env.String("", "PULSEHOOKS_PPROF_ADDR"),
		stuckAfter:    env.Duration("PULSEHOOKS_STUCK_AFTER", health.DefaultStuckAfter),
		service: delivery.Config{
			Streams: streams.Options{
				Partitions: env.Int("PULSEHOOKS_PARTITIONS", streams.DefaultPartitions),
				Replicas:   env.Int("PULSEHOOKS_REPLICAS", 1),
				// 0: streams.DefaultOperationalRetention.
				OperationalRetention: env.Duration("PULSEHOOKS_OPERATIONAL_RETENTION", 0),
			},
			AllowNetworks:   env.Networks("PULSEHOOKS_ALLOW_NETWORKS"),
			UserAgent:       "pulsehooks/" + version,
			RelayURL:        env.String("", "PULSEHOOKS_RELAY_URL"),
			Schedule:        env.Durations("PULSEHOOKS_RETRY_SCHEDULE", nil),
			Jitter:          env.Float("PULSEHOOKS_RETRY_JITTER", 0),
			DisableAfter:    env.Duration("PULSEHOOKS_DISABLE_AFTER", 0),
			FailingAfter:    env.Int("PULSEHOOKS_FAILING_AFTER", 0),
			DefaultTimeout:  env.Duration("PULSEHOOKS_DEFAULT_TIMEOUT", 0),
			LaneConcurrency: env.Int("PULSEHOOKS_LANE_CONCURRENCY", 0),
			LaneQueue:       env.Int("PULSEHOOKS_LANE_QUEUE", 0),
			MaxInFlight:     env.Int("PULSEHOOKS_MAX_IN_FLIGHT", 0),
			LaneMaxWait:     env.Duration("PULSEHOOKS_LANE_MAX_WAIT", 0),
			ShutdownGrace:   env.Duration("PULSEHOOKS_SHUTDOWN_GRACE", 0),
			AckWait:         env.Duration("PULSEHOOKS_ACK_WAIT", 0),
			LeaseTTL:        env.Duration("PULSEHOOKS_LEASE_TTL", 0),
			ClaimLease:      env.Duration("PULSEHOOKS_CLAIM_LEASE", 0),
			ClaimBatch:      env.Int("PULSEHOOKS_CLAIM_BATCH", 0),
			PollInterval:    env.Duration("PULSEHOOKS_RETRY_POLL_INTERVAL", 0),
			DeferDelay:      env.Duration("PULSEHOOKS_DEFER_DELAY", 0),
			RetryDelay:      env.Duration("PULSEHOOKS_RETRY_DELAY", 0),
			ReplicaWait:     env.Duration("PULSEHOOKS_REDIS_REPLICA_WAIT", 0),
		},
	}
	if s.healthAddr == "off" {
		s.healthAddr = ""
	}
	err := env.Err()
	if s.redisURL == "" {
		err = errors.Join(err, errors.New("PULSEHOOKS_REDIS_URL (or REDIS_URL) is required"))
	} else if ropts, rerr := redisconn.Parse(s.redisURL, redisconn.SettingsFromEnv(env)); rerr != nil {
		err = errors.Join(err, fmt.Errorf("PULSEHOOKS_REDIS_URL: %w", rerr))
	} else {
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
	proc, err := process.Start(ctx, process.Options{
		Service: "delivery", Version: version, NATSURL: s.natsURL, LogLevel: s.logLevel,
		PprofAddr: s.pprofAddr,
	})
	if err != nil {
		return err
	}
	// Sends the last acks and naks before closing.
	defer func() { err = errors.Join(err, proc.Close(context.WithoutCancel(ctx))) }()
	rdb := s.redis.NewClient()
	defer func() {
		if cerr := rdb.Close(); cerr != nil {
			proc.Logger.Warn("close redis client", "err", cerr)
		}
	}()
	if err := redistrace.Instrument(rdb, proc.TracerProvider); err != nil {
		return err
	}
	cfg, err := proc.DialConfig(s.configAddr, s.internalToken)
	if err != nil {
		return err
	}

	s.service.MetricsEndpointLabels = proc.Metrics.Labels.Endpoint
	// New waits for JetStream; the probes answer meanwhile (not ready).
	live := health.NewLiveness(s.stuckAfter)
	return health.RunStarting(ctx, s.healthAddr, func(ctx context.Context) (*delivery.Service, error) {
		return delivery.New(ctx, s.service, delivery.Deps{
			NATS:           proc.NATS,
			Redis:          rdb,
			Config:         cfg,
			Logger:         proc.Logger,
			TracerProvider: proc.TracerProvider,
			Liveness:       live,
			MeterProvider:  proc.Metrics.MeterProvider(),
		})
	}, health.WithLiveness(live), health.WithMetrics(proc.Metrics.Handler()))
}
