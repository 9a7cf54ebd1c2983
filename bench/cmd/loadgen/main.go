// Command loadgen is the benchmark's load generator. It runs as its own
// process so that its work is not counted against the system under test.
//
//	loadgen publish -nats nats://127.0.0.1:4222 -tenants-file tenants.txt -rate 1000 -duration 60s -out acks.tsv
//	loadgen ceiling -targets targets.json -concurrency 800 -duration 10s
//
// publish sends job events with pkg/pulseclient over NATS and writes one line
// per acknowledged event (message id, tenant, send and ack times in Unix
// nanoseconds) to -out; ceiling POSTs pre-signed webhooks straight to the
// receiver. Both print a JSON summary as their last line on stdout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: loadgen publish|ceiling [flags]")
	}
	switch args[0] {
	case "publish":
		return publish(ctx, args[1:])
	case "ceiling":
		return ceiling(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q: publish or ceiling", args[0])
}

func publish(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	var cfg loadgen.PublishConfig
	fs.StringVar(&cfg.NATSURL, "nats", "nats://127.0.0.1:4222", "NATS URL of ingest")
	tenants := fs.String("tenants", "", "comma-separated tenant ids (events go to them in turn)")
	tenantsFile := fs.String("tenants-file", "", "file with one tenant id per line")
	fs.StringVar(&cfg.EventType, "event-type", "job.completed", "event type")
	fs.Float64Var(&cfg.Rate, "rate", 0, "events per second (0: as fast as ingest accepts)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "publishes in flight at most")
	fs.IntVar(&cfg.Conns, "conns", 2, "NATS connections")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&cfg.Events, "events", 0, "stop after this many events (0: no limit)")
	fs.IntVar(&cfg.Size, "size", 1024, "size of the webhook body each event makes, in bytes")
	fs.IntVar(&cfg.Backlog, "backlog", 0, "pause while more than this many deliveries are outstanding at -receiver (0: never)")
	fs.IntVar(&cfg.DeliveriesPerEvent, "deliveries-per-event", 1, "deliveries each event makes (for -backlog)")
	fs.StringVar(&cfg.Receiver, "receiver", "", "receiver base URL whose /_ctl/stats counts deliveries (for -backlog)")
	out := fs.String("out", "acks.tsv", "file to write acknowledged events to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenants != "" {
		cfg.Tenants = strings.Split(*tenants, ",")
	}
	if *tenantsFile != "" {
		b, err := os.ReadFile(*tenantsFile)
		if err != nil {
			return err
		}
		cfg.Tenants = append(cfg.Tenants, strings.Fields(string(b))...)
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	sum, err := loadgen.Publish(ctx, cfg, w)
	if ferr := w.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if cerr := f.Close(); cerr != nil && err == nil {
		err = cerr
	}
	line, _ := json.Marshal(sum)
	fmt.Println(string(line))
	return err
}

func ceiling(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	var cfg loadgen.CeilingConfig
	targets := fs.String("targets", "", "JSON file: [{\"url\":…,\"secret\":…},…]")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "requests in flight")
	fs.IntVar(&cfg.PerHostConns, "per-host", 0, "idle connections kept per host (default: -concurrency)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "requests per second (0: as fast as possible)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&cfg.Size, "size", 1024, "body size in bytes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*targets)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &cfg.Targets); err != nil {
		return fmt.Errorf("%s: %w", *targets, err)
	}
	sum, err := loadgen.Ceiling(ctx, cfg)
	line, _ := json.Marshal(sum)
	fmt.Println(string(line))
	return err
}
