// Command config runs the pulsehooks config service: the operator API, the
// tenant REST API, the portal and the internal gRPC ConfigService. It is
// configured by PULSEHOOKS_* environment variables; tracing and metrics (GET
// /metrics on the HTTP listener; PULSEHOOKS_METRICS=off for none) by the
// standard OTEL_* variables too (see pkg/metrics).
package main

import (
	"context"
	"errors"
	"strings"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/process"
	"github.com/pulsehooks/pulsehooks/services/config"
	"github.com/pulsehooks/pulsehooks/services/config/attemptlog"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() { process.Main("config", run) }

func run(ctx context.Context) (err error) {
	env := envconf.New()
	natsURL := env.String("nats://127.0.0.1:4222", "PULSEHOOKS_NATS_URL")
	cfg := config.Config{
		HTTPAddr:      env.String(config.DefaultHTTPAddr, "PULSEHOOKS_HTTP_ADDR"),
		GRPCAddr:      env.String(config.DefaultGRPCAddr, "PULSEHOOKS_GRPC_ADDR"),
		PublicURL:     env.String("", "PULSEHOOKS_PUBLIC_URL"),
		AdminToken:    env.Required("PULSEHOOKS_ADMIN_TOKEN"),
		InternalToken: env.String("", "PULSEHOOKS_INTERNAL_TOKEN"),
		MasterKey:     env.Key32("PULSEHOOKS_MASTER_KEY"),
		Replicas:      env.Int("PULSEHOOKS_REPLICAS", 1),
		AllowNetworks: env.Networks("PULSEHOOKS_ALLOW_NETWORKS"),
		RelayURL:      env.String("", "PULSEHOOKS_RELAY_URL"),
		PortalLinkTTL: env.Duration("PULSEHOOKS_PORTAL_LINK_TTL", config.DefaultPortalLinkTTL),
		SessionTTL:    env.Duration("PULSEHOOKS_SESSION_TTL", config.DefaultSessionTTL),

		AttemptLogDir:    env.String(config.DefaultAttemptLogDir, "PULSEHOOKS_ATTEMPT_LOG_DIR"),
		AttemptRetention: env.Duration("PULSEHOOKS_ATTEMPT_RETENTION", config.DefaultAttemptRetention),
		JobIDField:       env.String(attemptlog.DefaultJobField, "PULSEHOOKS_JOB_ID_FIELD"),
		StuckAfter:       env.Duration("PULSEHOOKS_STUCK_AFTER", health.DefaultStuckAfter),
		Quotas: config.Quotas{
			Endpoints:          env.Int("PULSEHOOKS_QUOTA_ENDPOINTS", config.DefaultQuotaEndpoints),
			HeadersPerEndpoint: env.Int("PULSEHOOKS_QUOTA_HEADERS_PER_ENDPOINT", config.DefaultQuotaHeadersPerEndpoint),
		},
		Portal: config.PortalSettings{
			ProductName:  env.String("", "PULSEHOOKS_PORTAL_PRODUCT_NAME"),
			LogoURL:      env.String("", "PULSEHOOKS_PORTAL_LOGO_URL"),
			PrimaryColor: env.String("", "PULSEHOOKS_PORTAL_PRIMARY_COLOR"),
			Theme:        env.String("", "PULSEHOOKS_PORTAL_THEME"),
			// Origins separated by spaces or commas.
			FrameAncestors: strings.FieldsFunc(env.String("", "PULSEHOOKS_PORTAL_FRAME_ANCESTORS"), func(r rune) bool { return r == ',' || r == ' ' }),
		},
	}
	level := env.String("info", "PULSEHOOKS_LOG_LEVEL")
	pprofAddr := env.String("", "PULSEHOOKS_PPROF_ADDR")
	if err := env.Err(); err != nil {
		return err
	}

	proc, err := process.Start(ctx, process.Options{
		Service: "config", Version: version, NATSURL: natsURL, LogLevel: level,
		PprofAddr: pprofAddr,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, proc.Close(context.WithoutCancel(ctx))) }()

	svc, err := config.New(ctx, cfg, config.Deps{
		NATS: proc.NATS, Logger: proc.Logger, TracerProvider: proc.TracerProvider,
		MeterProvider: proc.Metrics.MeterProvider(), MetricsHandler: proc.Metrics.Handler(),
	})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
