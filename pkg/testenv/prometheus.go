package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNoPrometheus is returned by PrometheusBinary when no prometheus binary
// is installed.
var ErrNoPrometheus = errors.New("prometheus not found: install it (apt-get install prometheus) or set PROMETHEUS; `make test` installs it when run as root")

// PrometheusBinary finds the prometheus server: $PROMETHEUS, then PATH, then
// /usr/bin.
func PrometheusBinary() (string, error) {
	if p, ok := findBinary("PROMETHEUS", "prometheus"); ok {
		return p, nil
	}
	return "", ErrNoPrometheus
}

// PrometheusConfig is what StartPrometheus scrapes and evaluates.
type PrometheusConfig struct {
	// Targets are host:port addresses scraped at /metrics, in one job
	// "pulsehooks".
	Targets []string
	// RuleFiles are rule files loaded by absolute path.
	RuleFiles []string
	// Interval is the scrape and rule evaluation interval; default 1 s.
	Interval time.Duration
}

// Prometheus is a prometheus server process on a free loopback port, with a
// temporary configuration and storage directory.
type Prometheus struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}

	mu   sync.Mutex
	logs []string
}

// StartPrometheus starts prometheus scraping cfg's targets and waits until
// it is ready; it is stopped when the test ends. Without a prometheus binary
// the test is skipped, unless CI is set (CI installs it: there it must run).
func StartPrometheus(t testing.TB, cfg PrometheusConfig) *Prometheus {
	t.Helper()
	bin, err := PrometheusBinary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(prometheusYAML(cfg)), 0o600); err != nil {
		t.Fatalf("write prometheus config: %v", err)
	}
	p := &Prometheus{addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), done: make(chan struct{})}
	p.cmd = exec.Command(bin,
		"--config.file="+conf,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr,
		"--log.level=warn",
	)
	out, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.URL() + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("prometheus exited at start:\n%s", p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus on %s not ready after 20s (%v):\n%s", p.addr, err, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// prometheusYAML is the configuration of cfg. Values are quoted as JSON
// strings, which YAML reads as they are.
func prometheusYAML(cfg PrometheusConfig) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", cfg.Interval, cfg.Interval, cfg.Interval)
	b.WriteString("rule_files:\n")
	for _, f := range cfg.RuleFiles {
		fmt.Fprintf(&b, "  - %s\n", q(f))
	}
	b.WriteString("scrape_configs:\n  - job_name: pulsehooks\n    metrics_path: /metrics\n    static_configs:\n      - targets:\n")
	for _, tg := range cfg.Targets {
		fmt.Fprintf(&b, "          - %s\n", q(tg))
	}
	return b.String()
}

// URL is the base URL of the server's web UI and HTTP API.
func (p *Prometheus) URL() string { return "http://" + p.addr }

// Logs returns what the server has written so far.
func (p *Prometheus) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// stop asks the server to shut down and kills it after 5 s.
func (p *Prometheus) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates expr now (GET /api/v1/query) and returns its samples; a
// scalar answer is one sample without labels.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("query %q: read answer: %w", expr, err)
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("query %q: answer %q: %w", expr, body, err)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("query %q: %s (HTTP %d)", expr, ans.Error, resp.StatusCode)
	}
	switch ans.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(ans.Data.Result, &vec); err != nil {
			return nil, fmt.Errorf("query %q: vector %s: %w", expr, ans.Data.Result, err)
		}
		out := make([]Sample, 0, len(vec))
		for _, s := range vec {
			v, err := sampleValue(s.Value)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", expr, err)
			}
			out = append(out, Sample{Labels: s.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var sc [2]any
		if err := json.Unmarshal(ans.Data.Result, &sc); err != nil {
			return nil, fmt.Errorf("query %q: scalar %s: %w", expr, ans.Data.Result, err)
		}
		v, err := sampleValue(sc)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", expr, err)
		}
		return []Sample{{Labels: map[string]string{}, Value: v}}, nil
	default:
		return nil, fmt.Errorf("query %q: result type %q, want vector or scalar", expr, ans.Data.ResultType)
	}
}

// sampleValue is the value of a [timestamp, "value"] pair.
func sampleValue(pair [2]any) (float64, error) {
	s, ok := pair[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", pair[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q: %w", s, err)
	}
	return v, nil
}
