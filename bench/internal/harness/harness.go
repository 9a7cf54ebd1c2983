// Package harness is the benchmark orchestrator: it builds the binaries,
// starts the system under test (the standalone binary, or each service as its
// own process), a receiver and load generators as separate processes,
// measures the ceiling (the same receiver hit directly), runs the scenarios,
// counts every delivery exactly, and writes one JSON file per scenario and
// the markdown tables of docs/BENCHMARKS.md.
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/loadgen"
	"github.com/pulsehooks/pulsehooks/bench/internal/receiver"
)

// Options configure a run.
type Options struct {
	// Root is the repository root (where go.work is).
	Root string
	// BinDir is where the binaries are built (default <Root>/bench/.bin).
	BinDir string
	// Scenarios to run, in order; see Scenarios.
	Scenarios []string
	// Quick shortens every scenario (make bench-quick).
	Quick bool
	// Shape is ShapeStandalone (default) or ShapeProcesses for the traffic
	// scenarios; endpoint-scale always uses ShapeProcesses.
	Shape string
	// Redis is "auto" (a redis-server started on a free port when one is on
	// PATH, else the in-process one), "server", "inproc", or a redis:// URL.
	Redis string
	// Profile fetches CPU, heap and allocation profiles of the system while
	// each scenario runs (standalone shape).
	Profile bool
	// Results is where <scenario>.json and summary.md go (default
	// <Root>/bench/results, or …/results/quick with Quick).
	Results string
	// Docs, when set, is a markdown file whose section between MarkerBegin
	// and MarkerEnd is replaced by the tables.
	Docs string
	// Work is the directory for data and logs (default a new temporary
	// directory, removed after a run without failures unless Keep).
	Work string
	Keep bool
	// Publishers is the publishes in flight in the throughput scenario
	// (default 128).
	Publishers int
	// Partitions, when positive, sets the delivery partition count of the
	// system under test (PULSEHOOKS_PARTITIONS of the processes shape, the
	// -partitions flag of the standalone binary); otherwise each uses its
	// default.
	Partitions int
	// LogLevel of the services (default info, as deployed).
	LogLevel string
	// Command is recorded in the results.
	Command string
	// Log receives progress lines (default os.Stderr).
	Log io.Writer
	// Tiny overrides sizes for the smoke scenario (tests).
	Tiny bool
}

// Scenarios lists the scenarios `all` runs, in order.
var Scenarios = []string{"throughput", "latency", "fanout", "isolation", "scale", "retry", "trickle", "idle", "rollout"}

// QuickScenarios are what bench-quick runs.
var QuickScenarios = []string{"throughput", "latency", "trickle", "idle"}

// Harness runs scenarios.
type Harness struct {
	opts    Options
	binDir  string
	work    string
	machine Machine
	commit  string
	date    string
	goVer   string

	recv      *proc
	rc        receiver.Client
	recvHosts []string
	recvPort  int

	ceiling     *loadgen.CeilingSummary
	ceilingCPU  time.Duration // client and receiver CPU time of the ceiling run
	ceilingConc int
	floors      map[float64]*loadgen.CeilingSummary
	results     []Result
}

// New checks the options and prepares a run.
func New(opts Options) (*Harness, error) {
	if opts.Root == "" {
		return nil, errors.New("harness: Root is required")
	}
	if opts.Shape == "" {
		opts.Shape = ShapeStandalone
	}
	if opts.Shape != ShapeStandalone && opts.Shape != ShapeProcesses {
		return nil, fmt.Errorf("shape %q: standalone or processes", opts.Shape)
	}
	if opts.Redis == "" {
		opts.Redis = string(redisAuto)
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.Results == "" {
		opts.Results = filepath.Join(opts.Root, "bench", "results")
		if opts.Quick {
			opts.Results = filepath.Join(opts.Results, "quick")
		}
	}
	for _, s := range opts.Scenarios {
		if !slices.Contains(Scenarios, s) && s != "smoke" {
			return nil, fmt.Errorf("unknown scenario %q (%s, or all)", s, strings.Join(Scenarios, ", "))
		}
	}
	if opts.BinDir == "" {
		opts.BinDir = filepath.Join(opts.Root, "bench", ".bin")
	}
	return &Harness{opts: opts, binDir: opts.BinDir, floors: map[float64]*loadgen.CeilingSummary{}}, nil
}

func (h *Harness) logf(format string, args ...any) {
	_, _ = fmt.Fprintf(h.opts.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (h *Harness) bin(name string) string { return filepath.Join(h.binDir, name) }

// Run runs the scenarios and writes the results. It returns every result;
// the error is non-nil when the harness could not run or a scenario failed
// (lost, duplicate or unexpected deliveries, bad signatures, errors).
func (h *Harness) Run(ctx context.Context) (_ []Result, err error) {
	h.machine = describeMachine()
	h.commit = gitCommit(h.opts.Root)
	h.date = time.Now().UTC().Format(time.RFC3339)
	h.goVer = runtime.Version()
	if h.opts.Work == "" {
		if h.opts.Work, err = os.MkdirTemp("", "pulsehooks-bench-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(h.opts.Work, 0o755); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	h.work = h.opts.Work
	h.logf("work directory %s (logs and data)", h.work)
	if err := h.build(ctx); err != nil {
		return nil, err
	}
	if err := h.startReceiver(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if serr := h.recv.stop(10 * time.Second); serr != nil {
			h.logf("stop receiver: %v", serr)
		}
	}()
	if err := h.measureCeiling(ctx); err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	failed := 0
	for _, name := range h.opts.Scenarios {
		h.logf("scenario %s", name)
		started := time.Now()
		res := h.runScenario(ctx, name)
		h.results = append(h.results, res)
		h.logf("scenario %s: %s in %v %s", name, res.Status, time.Since(started).Round(time.Second), res.Reason)
		if err := writeJSON(filepath.Join(h.opts.Results, name+".json"), res); err != nil {
			return h.results, err
		}
		if res.Status == StatusFail || res.Status == StatusError {
			failed++
		}
		if ctx.Err() != nil {
			return h.results, ctx.Err()
		}
	}
	md := Markdown(h.results)
	if err := os.WriteFile(filepath.Join(h.opts.Results, "summary.md"), []byte(md), 0o644); err != nil {
		return h.results, err
	}
	if h.opts.Docs != "" {
		if err := updateDocs(h.opts.Docs, md); err != nil {
			return h.results, err
		}
	}
	if failed > 0 {
		return h.results, fmt.Errorf("%d scenario(s) failed; logs and data kept in %s", failed, h.work)
	}
	if !h.opts.Keep {
		_ = os.RemoveAll(h.work)
	}
	return h.results, nil
}

// runScenario runs one scenario, turning a panic-free error into a result.
func (h *Harness) runScenario(ctx context.Context, name string) Result {
	res := Result{
		Scenario: name, Shape: h.opts.Shape, Machine: h.machine, GoVersion: h.goVer,
		GitCommit: h.commit, Date: h.date, Command: h.opts.Command, RSSPeakMiB: map[string]float64{}, Extra: map[string]any{},
	}
	if h.opts.Partitions > 0 {
		res.Extra["partitions"] = h.opts.Partitions
	}
	if h.ceiling != nil {
		res.CeilingPerS = round(h.ceiling.PerS)
	}
	var err error
	switch name {
	case "throughput":
		err = h.throughput(ctx, &res)
	case "latency":
		err = h.latency(ctx, &res)
	case "trickle":
		err = h.trickle(ctx, &res)
	case "idle":
		err = h.idle(ctx, &res)
	case "fanout":
		err = h.fanout(ctx, &res)
	case "isolation":
		err = h.isolation(ctx, &res)
	case "scale":
		err = h.scale(ctx, &res)
	case "retry":
		err = h.retry(ctx, &res)
	case "rollout":
		err = h.rollout(ctx, &res)
	case "smoke":
		err = h.smoke(ctx, &res)
	}
	if err != nil {
		res.Status, res.Reason = StatusError, err.Error()
	}
	return res
}

// build builds the binaries into bench/.bin (cached by the go command).
func (h *Harness) build(ctx context.Context) error {
	pkgs := []string{"./services/standalone/cmd/pulsehooks", "./bench/cmd/receiver", "./bench/cmd/loadgen", "./bench/cmd/natsd"}
	if h.opts.Shape == ShapeProcesses || slices.Contains(h.opts.Scenarios, "scale") || slices.Contains(h.opts.Scenarios, "rollout") {
		for _, s := range []string{"config", "ingest", "fanout", "delivery"} {
			pkgs = append(pkgs, "./services/"+s+"/cmd/"+s)
		}
	}
	started := time.Now()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", h.binDir + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = h.opts.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	h.logf("built %d binaries in %v", len(pkgs), time.Since(started).Round(100*time.Millisecond))
	return nil
}

// receiverHosts is how many loopback addresses the receiver listens on:
// endpoints are spread over them so that, to an HTTP client, they are on
// different hosts, as real endpoints are (HTTP clients pool connections per
// host).
const receiverHosts = 100

func (h *Harness) startReceiver(ctx context.Context) error {
	p, line, err := startProc(ctx, h.work, procSpec{name: "receiver", bin: h.bin("receiver"),
		args: []string{"-hosts", fmt.Sprint(receiverHosts)}, firstLine: true})
	if err != nil {
		return err
	}
	var ready struct {
		Port  int      `json:"port"`
		Hosts []string `json:"hosts"`
	}
	if err := json.Unmarshal([]byte(line), &ready); err != nil {
		_ = p.stop(5 * time.Second)
		return fmt.Errorf("receiver said %q: %w", line, err)
	}
	h.recv, h.recvHosts, h.recvPort = p, ready.Hosts, ready.Port
	h.rc = receiver.Client{Base: fmt.Sprintf("http://127.0.0.1:%d", ready.Port)}
	return nil
}

// endpointURL is the receiver URL of the i-th endpoint named name.
func (h *Harness) endpointURL(i int, name, query string) string {
	u := fmt.Sprintf("http://%s:%d/ep/%s", h.recvHosts[i%len(h.recvHosts)], h.recvPort, name)
	if query != "" {
		u += "?" + query
	}
	return u
}

// laneConcurrency is delivery's default cap of attempts in flight per
// endpoint (services/delivery DefaultLaneConcurrency).
const laneConcurrency = 8

// measureCeiling POSTs pre-signed 1 KiB webhooks straight to the receiver:
// as fast as possible with delivery's effective concurrency for 100
// endpoints (8 per endpoint, 800 in all), and at 1,000/s for the latency
// floor.
func (h *Harness) measureCeiling(ctx context.Context) error {
	const endpoints = 100
	targets := make([]loadgen.Target, endpoints)
	secrets := map[string]string{}
	for i := range targets {
		name := fmt.Sprintf("ceil-%03d", i)
		targets[i] = loadgen.Target{URL: h.endpointURL(i, name, ""), Secret: newSecret()}
		secrets[name] = targets[i].Secret
	}
	if err := h.rc.SetSecrets(ctx, secrets); err != nil {
		return err
	}
	path := filepath.Join(h.work, "ceiling-targets.json")
	if err := writeJSON(path, targets); err != nil {
		return err
	}
	dur, floorDur := 10*time.Second, 5*time.Second
	if h.opts.Quick {
		dur, floorDur = 3*time.Second, 2*time.Second
	}
	if h.opts.Tiny {
		dur, floorDur = time.Second, time.Second
	}
	h.ceilingConc = endpoints * laneConcurrency
	recvCPU := h.recv.cpuTime()
	sum, clientCPU, err := h.runCeiling(ctx, path, h.ceilingConc, 0, dur)
	if err != nil {
		return err
	}
	h.ceiling = sum
	h.ceilingCPU = clientCPU + h.recv.cpuTime() - recvCPU
	h.logf("ceiling: %.0f requests/s with %d in flight (%d errors), p50 %.2f ms p99 %.2f ms; %.0f µs CPU per request (client and receiver)",
		sum.PerS, h.ceilingConc, sum.Errors, sum.P50Ms, sum.P99Ms, float64(h.ceilingCPU.Microseconds())/float64(max(sum.OK, 1)))
	floor, _, err := h.runCeiling(ctx, path, 64, 1000, floorDur)
	if err != nil {
		return err
	}
	h.floors[1000] = floor
	h.logf("latency floor at 1000/s: p50 %.2f ms p99 %.2f ms", floor.P50Ms, floor.P99Ms)
	return h.rc.Reset(ctx)
}

// runCeiling runs `loadgen ceiling` as its own process.
func (h *Harness) runCeiling(ctx context.Context, targets string, conc int, rate float64, dur time.Duration) (*loadgen.CeilingSummary, time.Duration, error) {
	args := []string{"ceiling", "-targets", targets, "-concurrency", fmt.Sprint(conc), "-per-host", fmt.Sprint(laneConcurrency),
		"-rate", fmt.Sprint(rate), "-duration", dur.String(), "-size", "1024"}
	var sum loadgen.CeilingSummary
	_, cpu, err := h.runLoadgenRSS(ctx, "ceiling", args, &sum)
	if err != nil {
		return nil, 0, err
	}
	if sum.OK == 0 {
		return nil, 0, fmt.Errorf("no request succeeded: %v", sum.Sample)
	}
	return &sum, cpu, nil
}

// runLoadgen runs the loadgen binary and decodes its last stdout line.
func (h *Harness) runLoadgen(ctx context.Context, logName string, args []string, out any) error {
	_, _, err := h.runLoadgenRSS(ctx, logName, args, out)
	return err
}

// runLoadgenRSS is runLoadgen that also returns the process's peak RSS in
// bytes and the CPU time it used.
func (h *Harness) runLoadgenRSS(ctx context.Context, logName string, args []string, out any) (int64, time.Duration, error) {
	cmd := exec.CommandContext(ctx, h.bin("loadgen"), args...)
	logf, err := os.Create(filepath.Join(h.work, "loadgen-"+logName+".log"))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = logf.Close() }()
	cmd.Stderr = logf
	stdout, err := cmd.Output()
	_, _ = logf.Write(stdout)
	var rss int64
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10 // kilobytes on Linux
		}
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if derr := json.Unmarshal([]byte(lines[len(lines)-1]), out); derr != nil {
		if err == nil {
			err = derr
		}
		b, _ := os.ReadFile(logf.Name())
		return rss, cpu, fmt.Errorf("loadgen %s: %w: %s", args[0], err, b)
	}
	if err != nil {
		b, _ := os.ReadFile(logf.Name())
		return rss, cpu, fmt.Errorf("loadgen %s: %w: %s", args[0], err, b)
	}
	return rss, cpu, nil
}

// ResultsDir is where the results are written.
func (h *Harness) ResultsDir() string { return h.opts.Results }
