package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// collectorConfig is the part of an OpenTelemetry collector configuration checked here.
type collectorConfig struct {
	Receivers  map[string]map[string]any `json:"receivers"`
	Processors map[string]any            `json:"processors"`
	Exporters  map[string]any            `json:"exporters"`
	Extensions map[string]any            `json:"extensions"`
	Connectors map[string]any            `json:"connectors"`
	Service    struct {
		Extensions []string `json:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `json:"receivers"`
			Processors []string `json:"processors"`
			Exporters  []string `json:"exporters"`
		} `json:"pipelines"`
		Telemetry map[string]any `json:"telemetry"`
	} `json:"service"`
}

func runOtel(r *report, args []string) error {
	if len(args) != 1 {
		return errors.New("want one collector configuration file")
	}
	body, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var c collectorConfig
	if err := yaml.UnmarshalStrict(body, &c); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	fmt.Printf("%s: %d pipelines\n", args[0], len(c.Service.Pipelines))
	subj := "collector config"

	otlp := c.Receivers["otlp"]
	protocols, _ := otlp["protocols"].(map[string]any)
	for proto, port := range map[string]string{"grpc": ":4317", "http": ":4318"} {
		p, _ := protocols[proto].(map[string]any)
		ep, _ := p["endpoint"].(string)
		// Collectors bind localhost by default; in a container that is unreachable.
		r.check(subj, strings.HasPrefix(ep, "0.0.0.0") && strings.HasSuffix(ep, port), "otlp receiver %s endpoint %q, want 0.0.0.0%s", proto, ep, port)
	}
	_, hasBatch := c.Processors["batch"]
	r.check(subj, hasBatch, "no batch processor")
	_, hasDebug := c.Exporters["debug"]
	r.check(subj, hasDebug, "no debug exporter")
	r.check(subj, c.Service.Pipelines["traces"].Exporters != nil, "no traces pipeline")

	defined := func(section map[string]any, id string) bool {
		_, ok := section[id]
		return ok
	}
	for _, id := range c.Service.Extensions {
		r.check(subj, defined(c.Extensions, id), "service.extensions names undefined extension %q", id)
	}
	for name, pl := range c.Service.Pipelines {
		r.check(subj, len(pl.Receivers) > 0 && len(pl.Exporters) > 0, "pipeline %s needs receivers and exporters", name)
		for _, id := range pl.Receivers {
			_, ok := c.Receivers[id]
			r.check(subj, ok || defined(c.Connectors, id), "pipeline %s names undefined receiver %q", name, id)
		}
		for _, id := range pl.Processors {
			r.check(subj, defined(c.Processors, id), "pipeline %s names undefined processor %q", name, id)
		}
		for _, id := range pl.Exporters {
			r.check(subj, defined(c.Exporters, id) || defined(c.Connectors, id), "pipeline %s names undefined exporter %q", name, id)
		}
		hasBatch := false
		for i, id := range pl.Processors {
			if id == "batch" || strings.HasPrefix(id, "batch/") {
				hasBatch = true
			}
			if id == "memory_limiter" {
				r.check(subj, i == 0, "pipeline %s: memory_limiter must be the first processor", name)
			}
		}
		r.check(subj, hasBatch, "pipeline %s does not batch", name)
	}
	return nil
}
