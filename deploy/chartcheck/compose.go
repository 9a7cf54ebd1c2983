package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeEnv is what each pulsehooks service needs in docker-compose.yml: variable → the exact
// value, or "" for any non-empty value.
var composeEnv = map[string]map[string]string{
	"config": {
		"PULSEHOOKS_NATS_URL": "nats://nats:4222", "PULSEHOOKS_HTTP_ADDR": ":8080", "PULSEHOOKS_GRPC_ADDR": ":9090",
		"PULSEHOOKS_ADMIN_TOKEN": "", "PULSEHOOKS_INTERNAL_TOKEN": "", "PULSEHOOKS_MASTER_KEY": "", "PULSEHOOKS_PUBLIC_URL": "",
		"PULSEHOOKS_REPLICAS": "1", "PULSEHOOKS_RELAY_URL": "http://config:8080",
	},
	"ingest": {
		"PULSEHOOKS_NATS_URL": "nats://nats:4222", "PULSEHOOKS_HTTP_ADDR": ":8081", "PULSEHOOKS_CONFIG_GRPC": "config:9090",
		"PULSEHOOKS_INGEST_TOKEN": "", "PULSEHOOKS_INTERNAL_TOKEN": "", "PULSEHOOKS_REPLICAS": "1",
		"PULSEHOOKS_REDIS_URL": "redis://redis:6379/0",
	},
	"fanout": {
		"PULSEHOOKS_NATS_URL": "nats://nats:4222", "PULSEHOOKS_HEALTH_ADDR": ":8082", "PULSEHOOKS_CONFIG_GRPC": "config:9090",
		"PULSEHOOKS_INTERNAL_TOKEN": "", "PULSEHOOKS_PARTITIONS": "", "PULSEHOOKS_REPLICAS": "1",
	},
	"delivery": {
		"PULSEHOOKS_NATS_URL": "nats://nats:4222", "PULSEHOOKS_HEALTH_ADDR": ":8083", "PULSEHOOKS_CONFIG_GRPC": "config:9090",
		"PULSEHOOKS_REDIS_URL": "redis://redis:6379/0", "PULSEHOOKS_INTERNAL_TOKEN": "",
		"PULSEHOOKS_PARTITIONS": "", "PULSEHOOKS_REPLICAS": "1", "PULSEHOOKS_RELAY_URL": "http://config:8080",
	},
}

// composePorts are the ports published to the host.
var composePorts = map[string]uint32{"config": 8080, "ingest": 8081}

func runCompose(r *report, args []string) error {
	fs := flag.NewFlagSet("compose", flag.ContinueOnError)
	envFile := fs.String("env-file", ".env.example", "env file the secrets are interpolated from")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("want one compose file")
	}
	path, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	envPath, err := filepath.Abs(*envFile)
	if err != nil {
		return err
	}
	ctx := context.Background()
	load := func(opts ...cli.ProjectOptionsFn) (*types.Project, error) {
		o, err := cli.NewProjectOptions([]string{path}, append([]cli.ProjectOptionsFn{cli.WithWorkingDirectory(dir), cli.WithName("pulsehooks")}, opts...)...)
		if err != nil {
			return nil, err
		}
		return o.LoadProject(ctx)
	}

	// The compose-spec loader docker compose itself uses: schema validation, interpolation,
	// references between services, volumes and networks.
	p, err := load(cli.WithEnvFiles(envPath), cli.WithDotEnv, cli.WithResolvedPaths(true))
	if err != nil {
		return fmt.Errorf("%s with %s does not load: %w", path, envPath, err)
	}
	fmt.Printf("%s: loads with %s (compose-spec schema, interpolation, references): services %v\n",
		fs.Arg(0), *envFile, p.ServiceNames())

	// Without the env file, compose must refuse to start rather than run with empty secrets.
	_, err = load()
	r.check("compose file", err != nil && strings.Contains(err.Error(), "PULSEHOOKS_"),
		"loads without the env file (%v): a missing secret must stop compose", err)

	// Secrets only by interpolation, never literal in the file.
	raw, err := load(cli.WithInterpolation(false))
	if err != nil {
		return fmt.Errorf("%s does not load without interpolation: %w", path, err)
	}
	for _, name := range raw.ServiceNames() {
		for k, v := range raw.Services[name].Environment {
			if isSecretName(k) {
				r.check("service "+name, v != nil && strings.HasPrefix(*v, "${"), "environment %s is a literal, not ${…} from .env", k)
			}
		}
	}

	want := append([]string{"nats", "redis", "otel-collector"}, components...)
	for _, name := range want {
		r.check("compose file", slices.Contains(p.ServiceNames(), name), "no service %q", name)
	}
	for _, name := range p.ServiceNames() {
		r.check("compose file", slices.Contains(want, name), "unexpected service %q", name)
	}
	checkComposeInfra(r, p, dir)
	for _, c := range components {
		if s, ok := p.Services[c]; ok {
			checkComposeService(r, p, s, dir)
		}
	}
	checkEnvFile(r, envPath, *envFile)
	return nil
}

func checkComposeInfra(r *report, p *types.Project, dir string) {
	if s, ok := p.Services["nats"]; ok {
		subj := "service nats"
		r.check(subj, strings.HasPrefix(s.Image, "nats:2."), "image %q is not nats:2.x", s.Image)
		cmd := []string(s.Command)
		r.check(subj, slices.Contains(cmd, "-js") || slices.Contains(cmd, "--jetstream"), "command %v does not enable JetStream (-js)", cmd)
		i := slices.IndexFunc(cmd, func(a string) bool { return a == "-sd" || a == "--store_dir" })
		r.check(subj, i >= 0 && i+1 < len(cmd) && cmd[i+1] == "/data", "command %v does not store JetStream in /data (-sd /data)", cmd)
		checkVolume(r, subj, s, "/data", p)
		checkHealthcheck(r, subj, s)
	}
	if s, ok := p.Services["redis"]; ok {
		subj := "service redis"
		r.check(subj, strings.HasPrefix(s.Image, "redis:7"), "image %q is not redis:7", s.Image)
		cmd := []string(s.Command)
		i := slices.Index(cmd, "--appendonly")
		r.check(subj, i >= 0 && i+1 < len(cmd) && cmd[i+1] == "yes", "command %v does not set --appendonly yes", cmd)
		checkVolume(r, subj, s, "/data", p)
		checkHealthcheck(r, subj, s)
	}
	if s, ok := p.Services["otel-collector"]; ok {
		subj := "service otel-collector"
		r.check(subj, strings.HasPrefix(s.Image, "otel/opentelemetry-collector-contrib:") && !strings.HasSuffix(s.Image, ":latest"),
			"image %q is not a pinned otel/opentelemetry-collector-contrib", s.Image)
		target := "/etc/otelcol-contrib/config.yaml"
		for _, a := range s.Command {
			if v, ok := strings.CutPrefix(a, "--config="); ok {
				target = v
			}
		}
		mounted := false
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind && v.Target == target {
				mounted = v.Source == filepath.Join(dir, "deploy", "otel-collector.yaml")
				_, err := os.Stat(v.Source)
				r.check(subj, err == nil, "mounted config %s: %v", v.Source, err)
			}
		}
		r.check(subj, mounted, "deploy/otel-collector.yaml is not mounted at the --config path %s", target)
	}
}

func checkVolume(r *report, subj string, s types.ServiceConfig, target string, p *types.Project) {
	for _, v := range s.Volumes {
		if v.Target == target {
			_, declared := p.Volumes[v.Source]
			r.check(subj, v.Type == types.VolumeTypeVolume && declared, "%s is not a declared named volume", target)
			return
		}
	}
	r.fail(subj, "no volume at %s: data would not survive the container", target)
}

func checkHealthcheck(r *report, subj string, s types.ServiceConfig) {
	hc := s.HealthCheck
	r.check(subj, hc != nil && !hc.Disable && len(hc.Test) > 1, "no healthcheck")
}

func checkComposeService(r *report, p *types.Project, s types.ServiceConfig, dir string) {
	name := s.Name
	subj := "service " + name
	b := s.Build
	r.check(subj, b != nil, "not built")
	if b != nil {
		r.check(subj, filepath.Clean(b.Context) == dir, "build context %q, want the repository root %q", b.Context, dir)
		df := b.Dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(b.Context, df)
		}
		r.check(subj, df == filepath.Join(dir, "deploy", "Dockerfile"), "dockerfile %q, want deploy/Dockerfile", b.Dockerfile)
		arg := b.Args["SERVICE"]
		r.check(subj, arg != nil && *arg == name, "build arg SERVICE=%v, want %q", deref(arg), name)
	}
	r.check(subj, s.ReadOnly, "read_only is not true")
	r.check(subj, slices.Contains(s.CapDrop, "ALL"), "cap_drop does not contain ALL")
	r.check(subj, slices.ContainsFunc(s.SecurityOpt, func(o string) bool { return strings.HasPrefix(o, "no-new-privileges") }), "security_opt has no no-new-privileges")
	r.check(subj, s.Restart != "" && s.Restart != "no", "restart policy %q: the service would stay down when a dependency restarts", s.Restart)

	for k, want := range composeEnv[name] {
		v := s.Environment[k]
		switch {
		case v == nil || *v == "":
			r.fail(subj, "environment %s is not set", k)
		case want != "":
			r.check(subj, *v == want, "environment %s=%q, want %q", k, *v, want)
		}
	}
	if v := s.Environment["PULSEHOOKS_MASTER_KEY"]; v != nil {
		key, err := base64.StdEncoding.DecodeString(*v)
		r.check(subj, err == nil && len(key) == 32, "PULSEHOOKS_MASTER_KEY is not standard base64 of 32 bytes")
	}
	ep := s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
	proto := s.Environment["OTEL_EXPORTER_OTLP_PROTOCOL"]
	if ep != nil {
		u, err := url.Parse(*ep)
		_, known := p.Services[u.Hostname()]
		r.check(subj, err == nil && known && proto != nil && ((*proto == "grpc" && u.Port() == "4317") || (*proto == "http/protobuf" && u.Port() == "4318")),
			"OTEL_EXPORTER_OTLP_ENDPOINT=%q with protocol %v is not the collector's OTLP port", *ep, deref(proto))
	} else {
		r.fail(subj, "OTEL_EXPORTER_OTLP_ENDPOINT is not set")
	}

	// Start order: NATS healthy first (streams are ensured at start-up), Redis for delivery
	// and ingest (its rate limits),
	// config for the services that read its gRPC API.
	needs := map[string]string{"nats": types.ServiceConditionHealthy}
	if name != "config" {
		needs["config"] = types.ServiceConditionStarted
	}
	if name == "delivery" || name == "ingest" {
		needs["redis"] = types.ServiceConditionHealthy
	}
	for dep, cond := range needs {
		d, ok := s.DependsOn[dep]
		r.check(subj, ok && d.Condition == cond, "depends_on %s is %q, want condition %s", dep, d.Condition, cond)
	}
	for dep, d := range s.DependsOn {
		if d.Condition == types.ServiceConditionHealthy {
			r.check(subj, p.Services[dep].HealthCheck != nil, "waits for %s to be healthy, but it has no healthcheck", dep)
		}
	}

	if port, published := composePorts[name]; published {
		found := false
		for _, pc := range s.Ports {
			found = found || (pc.Target == port && pc.Published == fmt.Sprint(port))
		}
		r.check(subj, found, "port %d is not published as %d", port, port)
	} else {
		r.check(subj, len(s.Ports) == 0, "publishes ports %v; only config and ingest serve outside the network", s.Ports)
	}
	if name == "delivery" {
		g := time.Duration(0)
		if s.StopGracePeriod != nil {
			g = time.Duration(*s.StopGracePeriod)
		}
		r.check(subj, g >= 45*time.Second, "stop_grace_period %v, want at least 45s (in-flight attempts take up to 30 s)", g)
	}
}

// checkEnvFile checks the example env file documents every secret with a usable value.
func checkEnvFile(r *report, path, shown string) {
	subj := shown
	env, err := dotenv.GetEnvFromFile(types.Mapping{}, []string{path})
	r.check(subj, err == nil, "does not parse: %v", err)
	for _, k := range []string{"PULSEHOOKS_ADMIN_TOKEN", "PULSEHOOKS_INGEST_TOKEN", "PULSEHOOKS_INTERNAL_TOKEN", "PULSEHOOKS_MASTER_KEY"} {
		r.check(subj, env[k] != "", "%s has no value", k)
	}
	key, err := base64.StdEncoding.DecodeString(env["PULSEHOOKS_MASTER_KEY"])
	r.check(subj, err == nil && len(key) == 32, "PULSEHOOKS_MASTER_KEY is not standard base64 of 32 bytes")
	body, err := os.ReadFile(path)
	r.check(subj, err == nil && strings.Contains(string(body), "cp .env.example .env"), "does not say how to use it (cp .env.example .env)")
}
