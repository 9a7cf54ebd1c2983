package main

import (
	"fmt"
	"os"
	"reflect"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// metricsPortName is the Service port every service's /metrics is scraped on.
const metricsPortName = "metrics"

// checkMetricsPorts checks that every service has a Service with a "metrics" port that
// targets the container port serving /metrics (its health listener: the probe port).
func checkMetricsPorts(r *report, o *objects, byComponent map[string]*workload) {
	for _, comp := range components {
		w := byComponent[comp]
		if w == nil {
			continue
		}
		c := &w.template.Spec.Containers[0]
		want := expectations[comp].probePort
		found := false
		for _, s := range o.services {
			if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
				continue
			}
			for _, p := range s.Spec.Ports {
				tp := servicePortTarget(p)
				if p.Name == metricsPortName && resolvesPort(tp, c) && (tp.StrVal == want || tp.IntVal == portOf(c, want)) {
					found = true
				}
			}
		}
		r.check(w.subject(), found, "no Service has a port %q targeting the %q container port (where /metrics is served)", metricsPortName, want)
	}
}

// checkMonitoring checks the ServiceMonitor and PrometheusRule: both rendered when want is
// true, neither otherwise; the ServiceMonitor scrapes the metrics port of every Service that
// has one; the PrometheusRule's groups are exactly those of rulesFile.
func checkMonitoring(r *report, o *objects, want bool, rulesFile string) {
	if !want {
		r.check("chart", len(o.serviceMonitors) == 0, "%d ServiceMonitors rendered with metrics.serviceMonitor off", len(o.serviceMonitors))
		r.check("chart", len(o.prometheusRules) == 0, "%d PrometheusRules rendered with metrics.prometheusRule off", len(o.prometheusRules))
		return
	}
	r.check("chart", len(o.serviceMonitors) == 1, "%d ServiceMonitors, want 1", len(o.serviceMonitors))
	r.check("chart", len(o.prometheusRules) == 1, "%d PrometheusRules, want 1", len(o.prometheusRules))
	for _, sm := range o.serviceMonitors {
		checkServiceMonitor(r, sm, o)
	}
	if rulesFile == "" {
		r.fail("chart", "-rules names no rules file to compare the PrometheusRule with")
		return
	}
	src, err := rulesOf(rulesFile)
	if err != nil {
		r.fail("chart", "%v", err)
		return
	}
	for _, pr := range o.prometheusRules {
		subj := "PrometheusRule " + pr.Name
		r.check(subj, len(pr.Spec.Groups) > 0, "no rule groups")
		r.check(subj, reflect.DeepEqual(pr.Spec.Groups, src), "groups differ from %s (render them from the chart's copy, kept identical)", rulesFile)
	}
}

// rulesOf reads a Prometheus rule file strictly into the PrometheusRule's group type.
func rulesOf(path string) ([]monitoringv1.RuleGroup, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules file: %w", err)
	}
	var f struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(body, &f); err != nil {
		return nil, fmt.Errorf("%s does not decode strictly as rule groups: %w", path, err)
	}
	if len(f.Groups) == 0 {
		return nil, fmt.Errorf("%s holds no rule groups", path)
	}
	return f.Groups, nil
}

func checkServiceMonitor(r *report, sm *monitoringv1.ServiceMonitor, o *objects) {
	subj := "ServiceMonitor " + sm.Name
	sel := sm.Spec.Selector
	scraped := 0
	for _, s := range o.services {
		if !selects(&sel, s.Labels) {
			continue
		}
		has := false
		for _, p := range s.Spec.Ports {
			has = has || p.Name == metricsPortName
		}
		r.check(subj, has, "selects Service %s, which has no %q port", s.Name, metricsPortName)
		scraped++
	}
	for _, s := range o.services {
		for _, p := range s.Spec.Ports {
			if p.Name == metricsPortName {
				r.check(subj, selects(&sel, s.Labels), "does not select Service %s (it has a %q port)", s.Name, metricsPortName)
			}
		}
	}
	r.check(subj, scraped == len(components), "selects %d Services, want one per service (%d)", scraped, len(components))
	r.check(subj, len(sm.Spec.Endpoints) == 1, "%d endpoints, want 1", len(sm.Spec.Endpoints))
	for _, ep := range sm.Spec.Endpoints {
		r.check(subj, ep.Port == metricsPortName, "endpoint port %q, want %q", ep.Port, metricsPortName)
		r.check(subj, ep.Path == "/metrics", "endpoint path %q, want /metrics", ep.Path)
		interval, errI := time.ParseDuration(string(ep.Interval))
		timeout, errT := time.ParseDuration(string(ep.ScrapeTimeout))
		r.check(subj, errI == nil && errT == nil && timeout > 0 && timeout <= interval,
			"interval %q and scrapeTimeout %q: want durations with scrapeTimeout ≤ interval", ep.Interval, ep.ScrapeTimeout)
	}
	r.check(subj, sm.Spec.JobLabel == "app.kubernetes.io/component", "jobLabel %q, want app.kubernetes.io/component (one job per service)", sm.Spec.JobLabel)
}

// servicePortTarget is p's target port, defaulting to its port number.
func servicePortTarget(p corev1.ServicePort) intstr.IntOrString {
	if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
		return intstr.FromInt32(p.Port)
	}
	return p.TargetPort
}
