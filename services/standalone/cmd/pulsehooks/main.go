// Command pulsehooks runs the whole pulsehooks system in one process on
// embedded defaults (`pulsehooks` or `pulsehooks serve`), a development
// webhook receiver that verifies signatures (`pulsehooks receive`), or a
// relay of an endpoint's deliveries to a local server (`pulsehooks listen`).
//
// It exits 0 when stopped with Ctrl-C or SIGTERM after a graceful stop, and 2
// with a usage message for an unknown subcommand or flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/pulsehooks/pulsehooks/pkg/envconf"
	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/pprofserver"
	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/telemetry"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// subcommand is one `pulsehooks <name>` command.
type subcommand struct {
	// summary is its line in the usage message.
	summary string
	run     func(ctx context.Context, args []string) error
}

// subcommands returns the commands by name. A new one is one entry here and
// a function in its own file that parses its flags with newFlagSet and
// parseFlags.
func subcommands() map[string]subcommand {
	return map[string]subcommand{
		"serve":   {"run every service in one process on embedded defaults (the default)", serve},
		"receive": {"run a development webhook receiver that prints and verifies what it gets", receive},
		"listen":  {"relay an endpoint's deliveries to a local server over a WebSocket (no public URL)", runListen},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2) // the usage message is already printed
	default:
		fmt.Fprintln(os.Stderr, "pulsehooks:", err)
		os.Exit(1)
	}
}

// errUsage is returned when the command line is wrong; the usage message has
// been written.
var errUsage = errors.New("usage")

// run dispatches to a subcommand: the first argument names it, and without
// one (or with only flags) it is serve.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	name := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		usage(stderr)
		return nil
	}
	cmd, ok := subcommands()[name]
	if !ok {
		_, _ = fmt.Fprintf(stderr, "pulsehooks: unknown command %q\n", name)
		usage(stderr)
		return errUsage
	}
	err := cmd.run(ctx, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// usage lists the subcommands.
func usage(w io.Writer) {
	cmds := subcommands()
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: pulsehooks [command] [flags]\n\ncommands:\n")
	for _, name := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", name, cmds[name].summary)
	}
	b.WriteString("\n`pulsehooks <command> -h` lists a command's flags.\n")
	_, _ = io.WriteString(w, b.String())
}

// newFlagSet returns the flag set of a subcommand: it reports errors instead
// of exiting, and prints its usage to standard error.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("pulsehooks "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// parseFlags parses args, turning a bad flag into errUsage (the flag package
// has printed the problem and the flags) and -h into flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		return err
	default:
		return errUsage
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func receive(ctx context.Context, args []string) error {
	fs := newFlagSet("receive")
	addr := fs.String("addr", "127.0.0.1:9999", "address to listen on")
	secret := fs.String("secret", "", "endpoint signing secret (whsec_…) to verify signatures with")
	status := fs.Int("status", 200, "HTTP status to answer with")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return standalone.RunReceiver(ctx, standalone.ReceiverConfig{Addr: *addr, Secret: *secret, Status: *status}, os.Stdout)
}

func serve(ctx context.Context, args []string) (err error) {
	fs := newFlagSet("serve")
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
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := env.Err(); err != nil {
		return err
	}
	tp, shutdown, err := telemetry.Setup(ctx, "pulsehooks-standalone", version)
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer func() { err = errors.Join(err, shutdown(context.WithoutCancel(ctx))) }()
	mp, err := metrics.Setup(ctx, "pulsehooks-standalone", version)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer func() { err = errors.Join(err, mp.Shutdown(context.WithoutCancel(ctx))) }()
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
		Redis:          redisconn.SettingsFromEnv(env),
		AllowNetworks:  allow,
		Partitions:     *partitions,
		Demo:           true,
	}, standalone.Deps{
		Logger: log, TracerProvider: tp, Out: os.Stdout,
		MeterProvider: mp.MeterProvider(), MetricsHandler: mp.Handler(), MetricLabels: mp.Labels,
	})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
