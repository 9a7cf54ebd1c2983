package standalone_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/pulsehooks/pulsehooks/pkg/metricstest"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// The monitoring files, relative to this module.
const (
	alertsFile    = "../../deploy/prometheus/alerts.yaml"
	dashboardFile = "../../deploy/grafana/pulsehooks.json"
)

// promQuery is one PromQL expression of the dashboard or the rules.
type promQuery struct {
	where string // "dashboard panel …", "alert …", "record …"
	expr  string
}

// ruleFile is the part of a Prometheus rule file the checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record string `yaml:"record"`
			Alert  string `yaml:"alert"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// readRules returns the recording rules' names and every rule's expression.
func readRules(t *testing.T) (records map[string]bool, queries []promQuery) {
	t.Helper()
	raw, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	records = map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records[r.Record] = true
				queries = append(queries, promQuery{"record " + r.Record, r.Expr})
			} else {
				queries = append(queries, promQuery{"alert " + r.Alert, r.Expr})
			}
		}
	}
	if len(records) == 0 || len(queries) == len(records) {
		t.Fatalf("%s: %d recording rules and %d alerts: want both", alertsFile, len(records), len(queries)-len(records))
	}
	return records, queries
}

// grafanaIntervals are the dashboard's Grafana variables, replaced by a
// duration before parsing.
var grafanaIntervals = strings.NewReplacer("${__rate_interval}", "5m", "$__rate_interval", "5m",
	"${__interval}", "1m", "$__interval", "1m", "${__range}", "1h", "$__range", "1h")

// readDashboard returns every query of the dashboard's panels, rows' panels
// and templating included.
func readDashboard(t *testing.T) []promQuery {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []promQuery
	var walk func(v any, title string)
	walk = func(v any, title string) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			for _, key := range []string{"expr", "query"} {
				if e, ok := v[key].(string); ok && strings.Contains(e, "pulsehooks") {
					out = append(out, promQuery{"dashboard panel " + title, grafanaIntervals.Replace(e)})
				}
			}
			for _, child := range v {
				walk(child, title)
			}
		case []any:
			for _, child := range v {
				walk(child, title)
			}
		}
	}
	walk(dash, "")
	if len(out) == 0 {
		t.Fatalf("%s: no queries found", dashboardFile)
	}
	return out
}

// selectors parses q and returns its vector selectors.
func selectors(t *testing.T, q promQuery) []*parser.VectorSelector {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", q.where, q.expr, err)
		return nil
	}
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// series is one exported series: its name and labels.
type series map[string]string

// scrapeSeries reads url (a /metrics page) and returns its series by name:
// a histogram family as its _bucket (one per le), _sum and _count series,
// a summary as itself (one per quantile), _sum and _count.
func scrapeSeries(url string) (map[string][]series, error) {
	fams, err := metricstest.Get(url)
	if err != nil {
		return nil, err
	}
	out := map[string][]series{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			ls := series{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			with := func(k, v string) series {
				c := series{k: v}
				for a, b := range ls {
					c[a] = b
				}
				return c
			}
			switch {
			case m.GetHistogram() != nil:
				for _, b := range m.GetHistogram().GetBucket() {
					out[name+"_bucket"] = append(out[name+"_bucket"], with("le", model.FloatString(b.GetUpperBound()).String()))
				}
				out[name+"_bucket"] = append(out[name+"_bucket"], with("le", "+Inf"))
				out[name+"_sum"] = append(out[name+"_sum"], ls)
				out[name+"_count"] = append(out[name+"_count"], ls)
			case m.GetSummary() != nil:
				for _, q := range m.GetSummary().GetQuantile() {
					out[name] = append(out[name], with("quantile", model.FloatString(q.GetQuantile()).String()))
				}
				out[name+"_sum"] = append(out[name+"_sum"], ls)
				out[name+"_count"] = append(out[name+"_count"], ls)
			default:
				out[name] = append(out[name], ls)
			}
		}
	}
	return out, nil
}

// unmatched returns, for every query, the selectors that name neither a
// recording rule nor an exported series matching all their label matchers.
func unmatched(t *testing.T, queries []promQuery, records map[string]bool, exported map[string][]series) []string {
	t.Helper()
	var bad []string
	for _, q := range queries {
		for _, vs := range selectors(t, q) {
			if vs.Name == "" {
				bad = append(bad, fmt.Sprintf("%s: selector %s has no metric name", q.where, vs))
				continue
			}
			if records[vs.Name] {
				continue
			}
			if !slices.ContainsFunc(exported[vs.Name], func(s series) bool {
				for _, m := range vs.LabelMatchers {
					if m.Name != model.MetricNameLabel && !m.Matches(s[m.Name]) {
						return false
					}
				}
				return true
			}) {
				bad = append(bad, fmt.Sprintf("%s: %s matches no exported series (%d series named %s)", q.where, vs, len(exported[vs.Name]), vs.Name))
			}
		}
	}
	return bad
}

// TestMonitoringQueriesNameExportedMetrics checks that every selector in
// every dashboard query and every rule expression names a recording rule of
// alerts.yaml or a series the standalone system really exports at /metrics,
// with label values it really has (le="10" included), after traffic that
// makes every metric appear: successes, failures that are retried and
// exhausted, a delivery put off for a failing endpoint, and an endpoint
// disabled by a 410.
func TestMonitoringQueriesNameExportedMetrics(t *testing.T) {
	records, queries := readRules(t)
	queries = append(queries, readDashboard(t)...)

	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL(), metrics: newMetrics(t), hooks: func(c *standalone.Config) {
		// Three attempts; the 2 s before the second lets a new delivery find the endpoint failing.
		c.RetrySchedule = []time.Duration{0, 2 * time.Second, 100 * time.Millisecond}
	}})
	ok, failing, gone := newReceiver(t), newReceiver(t), newReceiver(t)
	failing.setStatus(http.StatusInternalServerError)
	gone.setStatus(http.StatusGone)
	tn := sys.createTenant(t, "tenant-m")
	sys.createEndpoint(t, tn, map[string]any{"url": ok.url("ok"), "event_types": []string{"job.completed"}})
	sys.createEndpoint(t, tn, map[string]any{"url": failing.url("failing"), "event_types": []string{"job.failed"}})
	sys.createEndpoint(t, tn, map[string]any{"url": gone.url("gone"), "event_types": []string{"job.cancelled"}})

	publish := func(eventType, key string) {
		t.Helper()
		body := map[string]any{"tenant_id": tn.ID, "event_type": eventType, "data": jobData(eventType, "job_"+key), "idempotency_key": key}
		if code, out := sys.publishHTTP(t, body); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("publish %s: status %d %v", eventType, code, out)
		}
	}
	publish("job.completed", "c1")
	publish("job.completed", "c1") // a duplicate
	publish("job.cancelled", "g1")
	publish("job.failed", "f1")
	failing.waitCount(t, "failing", 1)
	publish("job.failed", "f2") // put off: the endpoint is failing
	ok.waitCount(t, "ok", 1)
	gone.waitCount(t, "gone", 1)

	url := metricsURL(t, sys)
	var bad []string
	testenv.WaitFor(t, 30*time.Second, func() error {
		exported, err := scrapeSeries(url)
		if err != nil {
			return err
		}
		if bad = unmatched(t, queries, records, exported); len(bad) > 0 {
			return fmt.Errorf("%d selectors match nothing exported:\n  %s", len(bad), strings.Join(bad, "\n  "))
		}
		return nil
	})
	t.Logf("%d queries checked against %s", len(queries), url)
}

// TestMonitoringFilesParse checks that every query of the dashboard and
// every rule parses as PromQL and selects something, and checks the checker:
// a selector of a name nothing exports, or of a label value no series has, is
// reported.
func TestMonitoringFilesParse(t *testing.T) {
	_, queries := readRules(t)
	queries = append(queries, readDashboard(t)...)
	for _, q := range queries {
		if len(selectors(t, q)) == 0 {
			t.Errorf("%s: %q selects no series", q.where, q.expr)
		}
	}
	t.Logf("%d queries parse", len(queries))

	exported := map[string][]series{"pulsehooks_x_total": {{"outcome": "success"}}}
	records := map[string]bool{"pulsehooks:x:rate5m": true}
	qs := []promQuery{
		{"a", `sum(rate(pulsehooks_x_total{outcome="success"}[5m])) / pulsehooks:x:rate5m`},
		{"b", `rate(pulsehooks_x_total{outcome="succeeded"}[5m])`},
		{"c", `pulsehooks_y`},
	}
	got := unmatched(t, qs, records, exported)
	sort.Strings(got)
	if len(got) != 2 || !strings.HasPrefix(got[0], "b: ") || !strings.HasPrefix(got[1], "c: ") {
		t.Fatalf("unmatched = %q, want b's and c's selectors only", got)
	}
}

// TestPrometheusShowsSuccessRatioAndRetryBacklog starts Debian's prometheus
// scraping the standalone system every second with the rules of
// alerts.yaml, sends successes and failures (to endpoints answering 500,
// whose retries wait an hour in the schedule), and reads the success ratio
// recording rule and the retry backlog from Prometheus's HTTP API.
//
// Each failing endpoint gets one delivery: a second one would be put off
// until the endpoint's retry is due, without an attempt.
func TestPrometheusShowsSuccessRatioAndRetryBacklog(t *testing.T) {
	if _, err := testenv.PrometheusBinary(); err != nil && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	rules, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL(), metrics: newMetrics(t), hooks: func(c *standalone.Config) {
		c.RetrySchedule = []time.Duration{0, time.Hour}
	}})
	ok, failing := newReceiver(t), newReceiver(t)
	failing.setStatus(http.StatusInternalServerError)
	tn := sys.createTenant(t, "tenant-p")
	sys.createEndpoint(t, tn, map[string]any{"url": ok.url("ok"), "event_types": []string{"job.completed"}})
	sys.createEndpoint(t, tn, map[string]any{"url": failing.url("first"), "event_types": []string{"job.created"}})
	const successes, failures = 6, 3
	for i := range failures {
		sys.createEndpoint(t, tn, map[string]any{"url": failing.url(fmt.Sprint("failing-", i)), "event_types": []string{"job.failed"}})
	}
	n := 0
	publish := func(eventType string) {
		t.Helper()
		n++
		body := map[string]any{"tenant_id": tn.ID, "event_type": eventType, "data": jobData(eventType, fmt.Sprint("job_", n))}
		if code, out := sys.publishHTTP(t, body); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("publish %s: status %d %v", eventType, code, out)
		}
	}

	// One of each first, so both counters exist before Prometheus's first
	// scrape and every later attempt is an increase it sees.
	publish("job.completed")
	publish("job.created")
	ok.waitCount(t, "ok", 1)
	failing.waitCount(t, "first", 1)

	prom := testenv.StartPrometheus(t, testenv.PrometheusConfig{Targets: []string{metricsAddr(t, sys)}, RuleFiles: []string{rules}})
	ctx := context.Background()
	value := func(expr string) (float64, error) {
		s, err := prom.Query(ctx, expr)
		if err != nil {
			return 0, err
		}
		if len(s) != 1 {
			return 0, fmt.Errorf("%s: %d samples %v, want 1", expr, len(s), s)
		}
		return s[0].Value, nil
	}
	start := time.Now()
	waitValue := func(expr string, want, tolerance float64, timeout time.Duration) {
		t.Helper()
		var got float64
		testenv.WaitFor(t, timeout, func() error {
			v, err := value(expr)
			if err != nil {
				return err
			}
			if got = v; math.Abs(v-want) > tolerance {
				return fmt.Errorf("%s = %v, want %v", expr, v, want)
			}
			return nil
		})
		t.Logf("%s = %v, %.1fs after prometheus started", expr, got, time.Since(start).Seconds())
	}
	const attempts = `sum(pulsehooks_delivery_attempts_total{outcome=%q})`
	waitValue(fmt.Sprintf(attempts, "success"), 1, 0, 10*time.Second)
	waitValue(fmt.Sprintf(attempts, "http_status"), 1, 0, 10*time.Second)

	for range successes {
		publish("job.completed")
	}
	publish("job.failed") // one delivery to each failing endpoint
	ok.waitCount(t, "ok", 1+successes)
	for i := range failures {
		failing.waitCount(t, fmt.Sprint("failing-", i), 1)
	}

	waitValue(fmt.Sprintf(attempts, "success"), 1+successes, 0, 10*time.Second)
	waitValue(fmt.Sprintf(attempts, "http_status"), 1+failures, 0, 10*time.Second)
	// Both series are sampled by the same scrapes, so rate() extrapolates
	// them alike and their ratio is the ratio of the increases: 6 of 9.
	waitValue("pulsehooks:delivery_success_ratio:rate5m", float64(successes)/(successes+failures), 1e-9, 20*time.Second)
	// Every failed delivery waits an hour in the schedule; the gauge is read
	// from Redis at most every 15 s.
	waitValue("pulsehooks:retry_schedule_items:sum", 1+failures, 0, 25*time.Second)

	if got := len(ok.requests("ok")); got != 1+successes {
		t.Errorf("ok endpoint received %d requests, want %d", got, 1+successes)
	}
	for _, name := range []string{"first", "failing-0", "failing-1", "failing-2"} {
		if got := len(failing.requests(name)); got != 1 {
			t.Errorf("endpoint %s received %d requests, want 1 (its retry is an hour away)", name, got)
		}
	}
	checkRulesHealthy(t, prom)
}

// checkRulesHealthy checks that Prometheus loaded every rule of alerts.yaml
// and evaluates each without error.
func checkRulesHealthy(t *testing.T, prom *testenv.Prometheus) {
	t.Helper()
	records, queries := readRules(t)
	var ans struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	resp, err := http.Get(prom.URL() + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		t.Fatalf("decode /api/v1/rules: %v", err)
	}
	n := 0
	for _, g := range ans.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q (%s)", r.Name, r.Health, r.LastError)
			}
		}
	}
	if n != len(queries) {
		t.Errorf("Prometheus loaded %d rules, alerts.yaml has %d (%d recording)", n, len(queries), len(records))
	}
}

// metricsAddr is host:port of the standalone system's /metrics (the config
// service's HTTP listener).
func metricsAddr(t *testing.T, sys *system) string {
	t.Helper()
	return strings.TrimPrefix(sys.svc.ConfigURL(), "http://")
}

// metricsURL is the standalone system's /metrics URL.
func metricsURL(t *testing.T, sys *system) string {
	t.Helper()
	return sys.svc.ConfigURL() + "/metrics"
}
