package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/count"
	"github.com/pulsehooks/pulsehooks/bench/internal/records"
)

// Statuses of a scenario result.
const (
	// StatusOK: counted exactly and the bar is met.
	StatusOK = "ok"
	// StatusMiss: counted exactly, but the bar is not met.
	StatusMiss = "miss"
	// StatusFail: a delivery was lost, duplicated or unexpected, or a
	// signature did not verify.
	StatusFail = "fail"
	// StatusError: the harness could not run the scenario.
	StatusError = "error"
	// StatusUnavailable: the system lacks what the scenario measures.
	StatusUnavailable = "not available"
)

// Result is one scenario's outcome, written to results/<scenario>.json.
type Result struct {
	Scenario string `json:"scenario"`
	Status   string `json:"status"`
	// Bar is the scenario's target; BarMet whether this run reached it.
	Bar    string `json:"bar"`
	BarMet *bool  `json:"bar_met,omitempty"`
	// Reason explains a miss, failure, error or unavailability.
	Reason string `json:"reason,omitempty"`

	Shape     string `json:"shape"`
	Redis     string `json:"redis"`
	Tenants   int    `json:"tenants"`
	Endpoints int    `json:"endpoints"`
	// SetupS is how long creating tenants and endpoints took.
	SetupS float64 `json:"setup_s"`
	// DurationS is how long the load ran; DrainS how long after the last
	// publish the last delivery arrived.
	DurationS float64 `json:"duration_s"`
	DrainS    float64 `json:"drain_s"`

	Published    int64   `json:"published"`
	Accepted     int64   `json:"accepted"`
	PublishErr   int64   `json:"publish_errors"`
	AcceptedPerS float64 `json:"accepted_per_s"`
	AckP99Ms     float64 `json:"ack_p99_ms"`

	Expected      int   `json:"expected"`
	Deliveries    int   `json:"deliveries"`
	Lost          int   `json:"lost"`
	Duplicates    int   `json:"duplicates"`
	Unexpected    int   `json:"unexpected"`
	BadSignatures int64 `json:"bad_signatures"`
	// AttemptsMissing counts deliveries the receiver answered 2xx for that
	// have no succeeded attempt record in ATTEMPTS (rollout only).
	AttemptsMissing *int    `json:"attempts_missing,omitempty"`
	FailedAttempts  int     `json:"failed_attempts"`
	DeliveriesPerS  float64 `json:"deliveries_per_s"`
	CeilingPerS     float64 `json:"ceiling_per_s"`
	Ratio           float64 `json:"ratio"`
	P50Ms           float64 `json:"p50_ms"`
	P90Ms           float64 `json:"p90_ms"`
	P99Ms           float64 `json:"p99_ms"`
	P999Ms          float64 `json:"p999_ms"`
	MaxMs           float64 `json:"max_ms"`
	// P99MsSteady is the p99 of the same load without restarts, in the same
	// run (rollout only).
	P99MsSteady float64 `json:"p99_ms_steady,omitempty"`
	// FromSendP50Ms and FromSendP99Ms measure from the start of the publish
	// instead of its ack: they include ingest's own work.
	FromSendP50Ms float64 `json:"from_send_p50_ms"`
	FromSendP99Ms float64 `json:"from_send_p99_ms"`
	// Early counts deliveries that arrived before the publisher saw the ack
	// (counted as 0 ms).
	Early int `json:"received_before_ack"`
	// CeilingP50Ms and CeilingP99Ms are the round trips of direct POSTs to
	// the receiver at the same rate: the latency floor of this machine.
	CeilingP50Ms float64 `json:"ceiling_p50_ms,omitempty"`
	CeilingP99Ms float64 `json:"ceiling_p99_ms,omitempty"`
	// P50MsFromStore and P99MsFromStore measure from the time JetStream
	// stored the event in EVENTS (the stream's timestamp of the message,
	// found by its Nats-Msg-Id, which is the webhook-id) to its first 2xx
	// receipt: ingest's reply, which comes later, is not in the way.
	P50MsFromStore float64 `json:"p50_ms_from_store,omitempty"`
	P99MsFromStore float64 `json:"p99_ms_from_store,omitempty"`
	// IdleCPUPctP8 and IdleCPUPctP64 are the CPU the whole system (its
	// processes and redis-server) used with no traffic, in percent of one
	// core, with 8 and with 64 delivery partitions (idle scenario).
	IdleCPUPctP8  *float64 `json:"idle_cpu_pct_p8,omitempty"`
	IdleCPUPctP64 *float64 `json:"idle_cpu_pct_p64,omitempty"`
	// RSSPeakMiB is each process's peak resident set (VmHWM).
	RSSPeakMiB map[string]float64 `json:"rss_peak_mib"`
	// CPUSeconds is the CPU time each process used during the load and the
	// drain; CPUPerDeliveryUs is the system's (all its processes') CPU time
	// per delivery, and CeilingCPUPerRequestUs the CPU time of the direct
	// client and the receiver per request in the ceiling run.
	CPUSeconds             map[string]float64 `json:"cpu_s,omitempty"`
	CPUPerDeliveryUs       float64            `json:"cpu_us_per_delivery,omitempty"`
	CeilingCPUPerRequestUs float64            `json:"ceiling_cpu_per_request_us,omitempty"`
	// Extra holds what only this scenario measures.
	Extra map[string]any `json:"extra,omitempty"`
	// Samples of mistakes, when there are any.
	LostSample       []count.Key `json:"lost_sample,omitempty"`
	DuplicateSample  []count.Key `json:"duplicate_sample,omitempty"`
	UnexpectedSample []count.Key `json:"unexpected_sample,omitempty"`
	Profiles         []string    `json:"profiles,omitempty"`

	Machine   Machine `json:"machine"`
	GoVersion string  `json:"go_version"`
	GitCommit string  `json:"git_commit"`
	Date      string  `json:"date"`
	Command   string  `json:"command"`

	// Data is what was counted, for tests.
	Data *Data `json:"-"`
}

// Data is what a traffic scenario counted.
type Data struct {
	Acks        []records.Ack
	Receipts    []records.Receipt
	Subscribers map[string][]string
	Ignore      map[string]bool
}

// Machine describes where the run happened.
type Machine struct {
	CPUs     int     `json:"nproc"`
	Model    string  `json:"cpu_model"`
	MemGiB   float64 `json:"mem_gib"`
	Kernel   string  `json:"kernel"`
	LoadAvg1 float64 `json:"loadavg_1m_at_start"`
}

func (m Machine) String() string {
	return fmt.Sprintf("%d × %s, %.0f GiB RAM, Linux %s (load average %.2f at start)", m.CPUs, m.Model, m.MemGiB, m.Kernel, m.LoadAvg1)
}

// describeMachine reads /proc for the machine description.
func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Model: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
				m.MemGiB = kb / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAvg1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}

// gitCommit is HEAD, with "-dirty" when the work tree has changes.
func gitCommit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += "-dirty"
	}
	return c
}

// fill sets the counted fields of r from c.
func (r *Result) fill(c count.Result) {
	r.Expected, r.Deliveries, r.Lost, r.Duplicates, r.Unexpected = c.Expected, c.Delivered, c.Lost, c.Duplicates, c.Unexpected
	r.FailedAttempts = c.FailedAttempts
	r.LostSample, r.DuplicateSample, r.UnexpectedSample = c.LostSample, c.DuplicateSample, c.UnexpectedSample
	ms := func(d time.Duration) float64 { return round(float64(d) / 1e6) }
	r.P50Ms = ms(count.Percentile(c.Latencies, 50))
	r.P90Ms = ms(count.Percentile(c.Latencies, 90))
	r.P99Ms = ms(count.Percentile(c.Latencies, 99))
	r.P999Ms = ms(count.Percentile(c.Latencies, 99.9))
	r.FromSendP50Ms = ms(count.Percentile(c.FromSend, 50))
	r.FromSendP99Ms = ms(count.Percentile(c.FromSend, 99))
	r.Early = c.Early
	if n := len(c.Latencies); n > 0 {
		r.MaxMs = ms(c.Latencies[n-1])
	}
	if c.LastReceived > c.FirstSent && c.Delivered > 0 {
		r.DeliveriesPerS = round(float64(c.Delivered) / (float64(c.LastReceived-c.FirstSent) / 1e9))
	}
	if r.CeilingPerS > 0 {
		r.Ratio = round3(r.DeliveriesPerS / r.CeilingPerS)
	}
}

// judge sets Status from the counts and whether the bar is met.
func (r *Result) judge(met bool, why string) {
	r.BarMet = &met
	switch {
	case r.Lost > 0 || r.Duplicates > 0 || r.Unexpected > 0 || r.BadSignatures > 0:
		r.Status = StatusFail
		r.Reason = fmt.Sprintf("counting is not exact: %d lost, %d duplicates, %d unexpected, %d bad signatures", r.Lost, r.Duplicates, r.Unexpected, r.BadSignatures)
		if why != "" {
			r.Reason += "; " + why
		}
	case !met:
		r.Status, r.Reason = StatusMiss, why
	default:
		r.Status = StatusOK
	}
}

func round(f float64) float64  { return float64(int64(f*100+0.5)) / 100 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// writeJSON writes v to path, indented.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markdown renders the results as the tables docs/BENCHMARKS.md shows.
func Markdown(results []Result) string {
	var b strings.Builder
	if len(results) > 0 {
		r := results[0]
		fmt.Fprintf(&b, "Run of %s at commit `%s` on %s; Go %s; `%s`.\n\n", r.Date, r.GitCommit, r.Machine, strings.TrimPrefix(r.GoVersion, "go"), r.Command)
	}
	b.WriteString("| scenario | status | deliveries | lost | dup | deliveries/s | ceiling/s | ratio | p50 ms | p99 ms | max ms | bar |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, r := range results {
		if r.Status == StatusUnavailable || r.Status == StatusError {
			fmt.Fprintf(&b, "| %s | **%s** | | | | | | | | | | %s |\n", r.Scenario, r.Status, r.Bar)
			continue
		}
		status := r.Status
		if status != StatusOK {
			status = "**" + status + "**"
		}
		if r.IdleCPUPctP8 != nil || r.IdleCPUPctP64 != nil {
			// No traffic: the figures are in the notes.
			fmt.Fprintf(&b, "| %s | %s | — | — | — | — | — | — | — | — | — | %s |\n", r.Scenario, status, r.Bar)
			continue
		}
		if r.Expected == 0 {
			// No deliveries were counted (the retry schedule is measured
			// on its own): only the latency columns apply.
			fmt.Fprintf(&b, "| %s | %s | — | — | — | — | — | — | %.2f | %.2f | %.2f | %s |\n",
				r.Scenario, status, r.P50Ms, r.P99Ms, r.MaxMs, r.Bar)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %.0f | %.0f | %.3f | %.2f | %.2f | %.2f | %s |\n",
			r.Scenario, status, r.Deliveries, r.Lost, r.Duplicates, r.DeliveriesPerS, r.CeilingPerS, r.Ratio, r.P50Ms, r.P99Ms, r.MaxMs, r.Bar)
	}
	b.WriteString("\nPeak RSS per process (MiB, VmHWM):\n\n| scenario | shape | redis | processes |\n| --- | --- | --- | --- |\n")
	for _, r := range results {
		if len(r.RSSPeakMiB) == 0 {
			continue
		}
		names := make([]string, 0, len(r.RSSPeakMiB))
		for n := range r.RSSPeakMiB {
			names = append(names, n)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s %.0f", n, r.RSSPeakMiB[n])
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Scenario, r.Shape, r.Redis, strings.Join(parts, ", "))
	}
	b.WriteString("\nNotes per scenario:\n\n")
	for _, r := range results {
		fmt.Fprintf(&b, "- **%s**: ", r.Scenario)
		var parts []string
		if r.Reason != "" {
			parts = append(parts, r.Reason)
		}
		if _, ok := r.Extra["schedule"]; ok {
			parts = append(parts, "p50/p99/max are the schedule's claim lateness (pkg/retryq measured directly)")
		}
		if r.Tenants > 0 {
			parts = append(parts, fmt.Sprintf("%d tenants, %d endpoints, setup %.1f s", r.Tenants, r.Endpoints, r.SetupS))
		}
		if r.Published > 0 {
			parts = append(parts, fmt.Sprintf("%d events published (%d accepted, %.0f/s, ack p99 %.2f ms) over %.1f s, drain %.1f s", r.Published, r.Accepted, r.AcceptedPerS, r.AckP99Ms, r.DurationS, r.DrainS))
		}
		if r.Deliveries > 0 {
			parts = append(parts, fmt.Sprintf("latency from publish start: p50 %.2f ms, p99 %.2f ms; %d deliveries arrived before the publisher saw the ack", r.FromSendP50Ms, r.FromSendP99Ms, r.Early))
		}
		if r.CPUPerDeliveryUs > 0 {
			parts = append(parts, fmt.Sprintf("system CPU %.0f µs per delivery (direct POST: %.0f µs per request, client and receiver)", r.CPUPerDeliveryUs, r.CeilingCPUPerRequestUs))
		}
		if r.P99MsFromStore > 0 {
			parts = append(parts, fmt.Sprintf("latency from the stored event: p50 %.2f ms, p99 %.2f ms", r.P50MsFromStore, r.P99MsFromStore))
		}
		for _, idle := range []struct {
			p   int
			pct *float64
		}{{8, r.IdleCPUPctP8}, {64, r.IdleCPUPctP64}} {
			if idle.pct != nil {
				parts = append(parts, fmt.Sprintf("idle CPU with %d partitions %.2f %% of one core", idle.p, *idle.pct))
			}
		}
		if r.CeilingP99Ms > 0 {
			parts = append(parts, fmt.Sprintf("direct-POST floor at the same rate: p50 %.2f ms, p99 %.2f ms", r.CeilingP50Ms, r.CeilingP99Ms))
		}
		keys := make([]string, 0, len(r.Extra))
		for k := range r.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := json.Marshal(r.Extra[k])
			parts = append(parts, fmt.Sprintf("%s=%s", k, v))
		}
		b.WriteString(strings.Join(parts, "; ") + ".\n")
	}
	return b.String()
}

// Markers delimit the generated part of docs/BENCHMARKS.md.
const (
	MarkerBegin = "<!-- bench:results:begin -->"
	MarkerEnd   = "<!-- bench:results:end -->"
)

// updateDocs replaces the text between the markers in path with md.
func updateDocs(path, md string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, MarkerBegin), strings.Index(s, MarkerEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s … %s section", path, MarkerBegin, MarkerEnd)
	}
	s = s[:i+len(MarkerBegin)] + "\n" + md + "\n" + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

// Render reads <dir>/<scenario>.json for each scenario that has one and
// writes the tables to <dir>/summary.md and, when docs is set, into its
// generated section.
func Render(dir string, scenarios []string, docs string) error {
	var results []Result
	for _, name := range scenarios {
		b, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s.json: %w", name, err)
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return fmt.Errorf("no results in %s", dir)
	}
	md := Markdown(results)
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if docs != "" {
		return updateDocs(docs, md)
	}
	return nil
}
