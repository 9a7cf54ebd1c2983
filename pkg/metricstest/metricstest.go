// Package metricstest reads a /metrics endpoint in tests: it scrapes the
// Prometheus text format and answers for a metric's value over the series
// whose labels match.
package metricstest

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is one scrape, by metric name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url and parses the answer, failing t if it cannot.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	f, err := Get(url)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Get GETs url and parses the answer.
func Get(url string) (Families, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return Parse(resp.Body)
}

// Parse parses the Prometheus text format.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return f, nil
}

// Names returns the metric names, sorted.
func (f Families) Names() []string {
	out := make([]string, 0, len(f))
	for n := range f {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Series returns the series of name whose labels include every pair of
// labels (name, value, name, value…).
func (f Families) Series(name string, labels ...string) []*dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range fam.GetMetric() {
		if matches(m, labels) {
			out = append(out, m)
		}
	}
	return out
}

// Sum returns the sum of the values (counter, gauge) or observation counts
// (histogram) of the series of name that match labels; 0 if none does.
func (f Families) Sum(name string, labels ...string) float64 {
	var v float64
	for _, m := range f.Series(name, labels...) {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			v += m.Untyped.GetValue()
		}
	}
	return v
}

// Labels returns the label names and values of m.
func Labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func matches(m *dto.Metric, labels []string) bool {
	have := Labels(m)
	for i := 0; i+1 < len(labels); i += 2 {
		if v, ok := have[labels[i]]; !ok || v != labels[i+1] {
			return false
		}
	}
	return true
}
