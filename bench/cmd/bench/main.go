// Command bench is the benchmark orchestrator behind `make bench` and
// `make bench-quick`: it builds the standalone binary (and, for the
// endpoint-scale scenario, the four services), runs the receiver and load
// generators as their own processes, measures the ceiling, runs the
// scenarios, and writes bench/results/<scenario>.json and summary.md.
// It exits non-zero when a delivery was lost, duplicated or unexpected, a
// signature did not verify, or a scenario could not run. Missing a
// performance bar is reported, not an error.
//
//	go run ./bench/cmd/bench                       # every scenario
//	go run ./bench/cmd/bench -quick                # throughput, latency, trickle and idle, short; prints the JSON last
//	go run ./bench/cmd/bench -scenarios latency -profile
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pulsehooks/pulsehooks/bench/internal/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	scenarios := fs.String("scenarios", "all", "comma-separated scenarios: "+strings.Join(harness.Scenarios, ", ")+", or all")
	quick := fs.Bool("quick", false, "short throughput, latency, trickle and idle runs (a few minutes); prints the results JSON as the last line")
	shape := fs.String("shape", harness.ShapeStandalone, "system shape of the traffic scenarios: standalone or processes (endpoint-scale always uses processes)")
	redisMode := fs.String("redis", "auto", "auto (redis-server if on PATH, else in-process), server, inproc, or a redis:// URL")
	profile := fs.Bool("profile", os.Getenv("PROFILE") == "1", "fetch CPU, heap and allocation profiles of the system under load into <results>/profiles (PROFILE=1)")
	results := fs.String("results", "", "results directory (default bench/results, bench/results/quick with -quick)")
	docs := fs.String("docs", "", "markdown file whose generated section (between "+harness.MarkerBegin+" and "+harness.MarkerEnd+") is replaced with the tables")
	work := fs.String("work", "", "work directory for data and logs (default: a temporary directory)")
	keep := fs.Bool("keep", false, "keep the work directory after a successful run")
	logLevel := fs.String("log-level", "info", "log level of the services")
	publishers := fs.Int("publishers", 128, "publishes in flight in the throughput scenario")
	render := fs.Bool("render", false, "run nothing: render the tables from the results directory's <scenario>.json files (to summary.md and -docs)")
	partitions := fs.Int("partitions", 0, "delivery partitions of the system under test (default: its own default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	list := harness.Scenarios
	switch {
	case *quick && *scenarios == "all":
		list = harness.QuickScenarios
	case *scenarios != "all":
		list = strings.Split(*scenarios, ",")
	}
	if *render {
		dir := *results
		if dir == "" {
			dir = filepath.Join(root, "bench", "results")
		}
		return harness.Render(dir, list, *docs)
	}
	h, err := harness.New(harness.Options{
		Root: root, Scenarios: list, Quick: *quick, Shape: *shape, Redis: *redisMode, Profile: *profile,
		Results: *results, Docs: *docs, Work: *work, Keep: *keep, LogLevel: *logLevel, Partitions: *partitions, Publishers: *publishers,
		Command: "bench " + strings.Join(args, " "),
	})
	if err != nil {
		return err
	}
	res, err := h.Run(ctx)
	if len(res) > 0 {
		fmt.Fprint(os.Stderr, "\n"+harness.Markdown(res))
		line, jerr := json.Marshal(res)
		if jerr != nil {
			return errors.Join(err, jerr)
		}
		fmt.Println(string(line))
	}
	return err
}

// repoRoot finds the directory holding go.work, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found: run from inside the pulsehooks repository")
		}
		dir = parent
	}
}
