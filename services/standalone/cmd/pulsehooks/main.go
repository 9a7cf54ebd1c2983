// Command pulsehooks runs the whole pulsehooks system in one process on
// embedded defaults (`pulsehooks` or `pulsehooks serve`), or a development
// webhook receiver that verifies signatures (`pulsehooks receive`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/pprofserver"
	"github.com/pulsehooks/pulsehooks/pkg/telemetry"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pulsehooks:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "serve" || args[0] == "receive") {
		cmd, args = args[0], args[1:]
	}
	if len(args) > 0 && args[0] == "listen" {
		return runListen(ctx, args[1:])
	}
	if cmd == "receive" {
		return receive(ctx, args)
	}
	return serve(ctx, args)
}

func receive(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("receive", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9999", "address to listen on")
	secret := fs.String("secret", "", "endpoint signing secret (whsec_…) to verify signatures with")
	status := fs.Int("status", 200, "HTTP status to answer with")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	return standalone.RunReceiver(ctx, standalone.ReceiverConfig{Addr: *addr, Secret: *secret, Status: *status}, os.Stdout)
}

func serve(ctx context.Context, args []string) (err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	env := envconf.New()
	dataDir := fs.String("data", env.String("data", "PULSEHOOKS_DATA_DIR"), "data directory (JetStream store, dev secrets)")
	natsPort := fs.Int("nats-port", env.Int("PULSEHOOKS_NATS_PORT", 4222), "embedded nats-server port (-1: any free port)")
	httpAddr := fs.String("http", env.String("127.0.0.1:8080", "PULSEHOOKS_HTTP_ADDR"), "REST API, operator API and portal address")
	grpcAddr := fs.String("grpc", env.String("127.0.0.1:9090", "PULSEHOOKS_GRPC_ADDR"), "config service gRPC address")
	ingestAddr := fs.String("ingest", env.String("127.0.0.1:8081", "PULSEHOOKS_INGEST_ADDR"), "ingest HTTP address")
	publicURL := fs.String("public-url", env.String("", "PULSEHOOKS_PUBLIC_URL"), "base URL of portal links (default http://<http>)")
	redisURL := fs.String("redis", env.String("", "REDIS_URL", "PULSEHOOKS_REDIS_URL"), "Redis URL (default: in-process, memory only)")
	pprofAddr := fs.String("pprof", env.String("", "PULSEHOOKS_PPROF_ADDR"), "net/http/pprof listener address, such as 127.0.0.1:6060 (default off)")
	partitions := fs.Int("partitions", env.Int("PULSEHOOKS_PARTITIONS", 0), "delivery partitions of a new data directory (default 8; an existing one keeps its count)")
	allow := env.Networks("PULSEHOOKS_ALLOW_NETWORKS")
	level := env.String("info", "PULSEHOOKS_LOG_LEVEL")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if err := env.Err(); err != nil {
		return err
	}
	tp, shutdown, err := telemetry.Setup(ctx, "pulsehooks-standalone", version)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() { err = errors.Join(err, shutdown(context.WithoutCancel(ctx))) }()
	log := telemetry.NewLogger(os.Stderr, level, "standalone")
	if *pprofAddr != "" {
		bound, stopPprof, err := pprofserver.Serve(*pprofAddr)
		if err != nil {
			return err
		}
		defer stopPprof()
		log.Info("pprof listening", "addr", bound)
	}

	svc, err := standalone.New(ctx, standalone.Config{
		DataDir:        *dataDir,
		NATSPort:       *natsPort,
		ConfigHTTPAddr: *httpAddr,
		ConfigGRPCAddr: *grpcAddr,
		IngestHTTPAddr: *ingestAddr,
		PublicURL:      *publicURL,
		RedisURL:       *redisURL,
		AllowNetworks:  allow,
		Partitions:     *partitions,
		Demo:           true,
	}, standalone.Deps{Logger: log, TracerProvider: tp, Out: os.Stdout})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
