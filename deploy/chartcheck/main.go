// Command chartcheck validates pulsehooks' deployment files offline: Kubernetes manifests
// rendered by `helm template`, docker-compose.yml, the OpenTelemetry collector configuration
// and deploy/Dockerfile. deploy/check.sh runs it; it is its own module so the services'
// dependency graphs stay free of Kubernetes and compose libraries.
//
// Usage:
//
//	chartcheck manifests [-replicas config=2,...] [-external-secrets name,...] [-monitoring -rules alerts.yaml] rendered.yaml
//	chartcheck compose -env-file .env.example docker-compose.yml
//	chartcheck otel deploy/otel-collector.yaml
//	chartcheck dockerfile deploy/Dockerfile
//
// Each prints what it checked and exits 1 when any check fails.
package main

import (
	"fmt"
	"os"
	"strings"
)

// components are the four services, in the order they are reported.
var components = []string{"config", "ingest", "fanout", "delivery"}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	r := &report{}
	var err error
	switch os.Args[1] {
	case "manifests":
		err = runManifests(r, os.Args[2:])
	case "compose":
		err = runCompose(r, os.Args[2:])
	case "otel":
		err = runOtel(r, os.Args[2:])
	case "dockerfile":
		err = runDockerfile(r, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chartcheck %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	os.Exit(r.finish(os.Args[1]))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chartcheck manifests|compose|otel|dockerfile [flags] file")
	os.Exit(2)
}

// report collects the outcome of each check under a subject (a Deployment, a compose service…).
type report struct {
	checks   int
	failures []string
	subjects []string
	bySubj   map[string][]string
}

// check records one check of subject: what was checked and, when ok is false, why it failed.
func (r *report) check(subject string, ok bool, format string, args ...any) {
	r.checks++
	if r.bySubj == nil {
		r.bySubj = map[string][]string{}
	}
	if _, seen := r.bySubj[subject]; !seen {
		r.subjects = append(r.subjects, subject)
		r.bySubj[subject] = nil
	}
	if !ok {
		msg := fmt.Sprintf(format, args...)
		r.failures = append(r.failures, subject+": "+msg)
		r.bySubj[subject] = append(r.bySubj[subject], msg)
	}
}

// fail records a failed check.
func (r *report) fail(subject, format string, args ...any) { r.check(subject, false, format, args...) }

// finish prints one line per subject and the failures, and returns the exit code.
func (r *report) finish(what string) int {
	for _, s := range r.subjects {
		if fails := r.bySubj[s]; len(fails) > 0 {
			fmt.Printf("  FAIL %s\n", s)
			for _, f := range fails {
				fmt.Printf("         - %s\n", f)
			}
		} else {
			fmt.Printf("  ok   %s\n", s)
		}
	}
	if len(r.failures) > 0 {
		fmt.Printf("  %s: %d of %d checks failed\n", what, len(r.failures), r.checks)
		return 1
	}
	fmt.Printf("  %s: all %d checks passed\n", what, r.checks)
	return 0
}

// splitList splits "a,b,,c" into its non-empty, trimmed items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
