package harness

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
)

// Shapes of the system under test.
const (
	// ShapeStandalone is every service in one process (services/standalone).
	ShapeStandalone = "standalone"
	// ShapeProcesses is each service its own process, with a nats-server
	// process (cmd/natsd) and redis-server.
	ShapeProcesses = "processes"
)

// stopTimeout bounds the graceful stop of one process.
const stopTimeout = 40 * time.Second

// system is a running pulsehooks.
type system struct {
	shape      string
	configURL  string
	ingestURL  string
	natsURL    string
	adminToken string
	// redisURL is the Redis the system uses ("" with the in-process one)
	// and redisDesc says which it is, for the results.
	redisURL  string
	redisDesc string
	// procs are the system's processes by name, in start order.
	procs []*proc
	// pprof maps a process name to its pprof address.
	pprof map[string]string
	// env is what processes-shape services were started with, to restart
	// one (restart).
	env      map[string][]string
	bins     map[string]string
	readyURL map[string]string
	logDir   string
	redis    *proc
	stopped  bool

	// mu guards procs and restarting while a restart runs beside the load.
	mu sync.Mutex
	// restarting names the processes being restarted on purpose: their
	// exit is not a death.
	restarting map[string]bool
}

// proc returns the named process, or nil.
func (s *system) proc(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

// dead returns a process of the system that has exited, or nil; one being
// restarted does not count.
func (s *system) dead() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.exited() && !s.restarting[p.name] {
			return p
		}
	}
	if s.redis != nil && s.redis.exited() {
		return s.redis
	}
	return nil
}

// watch cancels ctx with an error as soon as a process of the system exits.
func (s *system) watch(ctx context.Context, cancel context.CancelCauseFunc) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if p := s.dead(); p != nil {
				cancel(fmt.Errorf("%s exited during the run: %s", p.name, p.tail()))
				return
			}
		}
	}
}

// rss returns the peak RSS of each process in MiB.
func (s *system) rss() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]float64{}
	for _, p := range s.procs {
		out[p.name] = mib(p.peakRSS())
	}
	if s.redis != nil {
		out["redis-server"] = mib(s.redis.peakRSS())
	}
	return out
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// stop stops the processes in reverse start order, then redis-server.
func (s *system) stop() error {
	if s == nil || s.stopped {
		return nil
	}
	s.stopped = true
	var errs []string
	for i := len(s.procs) - 1; i >= 0; i-- {
		if err := s.procs[i].stop(stopTimeout); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if err := s.redis.stop(10 * time.Second); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("stop system: %s", strings.Join(errs, "; "))
	}
	return nil
}

// redisMode is how the harness provides Redis.
type redisMode string

// Redis modes: a redis-server when one is on PATH (auto), always one
// (server), the system's in-process server (inproc), or a given URL.
const (
	redisAuto   redisMode = "auto"
	redisServer redisMode = "server"
	redisInProc redisMode = "inproc"
)

// startRedis starts redis-server on a free port with persistence off.
func startRedis(ctx context.Context, logDir string) (*proc, string, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", "", fmt.Errorf("redis-server not found on PATH: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _, err := startProc(ctx, logDir, procSpec{name: "redis-server", bin: bin,
		args: []string{"--bind", host, "--port", port, "--save", "", "--appendonly", "no", "--protected-mode", "no"}})
	if err != nil {
		return nil, "", "", err
	}
	url := "redis://" + addr + "/0"
	rdb, _, err := redisconn.New(url, redisconn.Settings{})
	if err != nil {
		_ = p.stop(5 * time.Second)
		return nil, "", "", err
	}
	defer func() { _ = rdb.Close() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err = rdb.Ping(ctx).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || p.exited() {
			_ = p.stop(5 * time.Second)
			return nil, "", "", fmt.Errorf("redis-server not answering: %v: %s", err, p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	version, _ := rdb.Info(ctx, "server").Result()
	desc := "redis-server"
	for _, line := range strings.Split(version, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			desc += " " + v
		}
	}
	return p, url, desc, nil
}

// provideRedis gives the system its Redis per mode.
func (h *Harness) provideRedis(ctx context.Context, logDir string, sys *system) error {
	switch mode := redisMode(h.opts.Redis); mode {
	case redisInProc:
		sys.redisDesc = "in-process (miniredis)"
		return nil
	case redisAuto, redisServer, "":
		if _, err := exec.LookPath("redis-server"); err != nil {
			if mode == redisServer {
				return err
			}
			sys.redisDesc = "in-process (miniredis): no redis-server on PATH"
			return nil
		}
		p, url, desc, err := startRedis(ctx, logDir)
		if err != nil {
			return err
		}
		sys.redis, sys.redisURL, sys.redisDesc = p, url, desc
		return nil
	default:
		sys.redisURL, sys.redisDesc = string(mode), "given: "+string(mode)
		return nil
	}
}

// startStandalone starts the standalone binary on free ports with a fresh
// data directory.
func (h *Harness) startStandalone(ctx context.Context, name string) (_ *system, err error) {
	logDir := filepath.Join(h.work, name)
	dataDir := filepath.Join(logDir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	sys := &system{shape: ShapeStandalone, pprof: map[string]string{}, logDir: logDir}
	defer func() {
		if err != nil {
			_ = sys.stop()
		}
	}()
	if err := h.provideRedis(ctx, logDir, sys); err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(5)
	if err != nil {
		return nil, err
	}
	_, natsPort, _ := net.SplitHostPort(addrs[0])
	args := []string{"serve", "-data", dataDir, "-nats-port", natsPort, "-http", addrs[1], "-grpc", addrs[2], "-ingest", addrs[3]}
	if sys.redisURL != "" {
		args = append(args, "-redis", sys.redisURL)
	}
	if h.opts.Profile {
		args = append(args, "-pprof", addrs[4])
		sys.pprof["pulsehooks"] = addrs[4]
	}
	if h.opts.Partitions > 0 {
		args = append(args, "-partitions", strconv.Itoa(h.opts.Partitions))
	}
	p, _, err := startProc(ctx, logDir, procSpec{name: "pulsehooks", bin: h.bin("pulsehooks"), args: args,
		env: []string{"PULSEHOOKS_LOG_LEVEL=" + h.opts.LogLevel}})
	if err != nil {
		return nil, err
	}
	sys.procs = append(sys.procs, p)
	sys.configURL, sys.ingestURL, sys.natsURL = "http://"+addrs[1], "http://"+addrs[3], "nats://"+addrs[0]
	if err := waitHTTP(ctx, p, sys.configURL+"/readyz", 60*time.Second); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, p, sys.ingestURL+"/readyz", 60*time.Second); err != nil {
		return nil, err
	}
	var secrets struct {
		AdminToken string `json:"admin_token"`
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "secrets.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &secrets); err != nil {
		return nil, fmt.Errorf("secrets.json: %w", err)
	}
	sys.adminToken = secrets.AdminToken
	return sys, nil
}

// startProcesses starts nats-server (cmd/natsd), redis-server and the four
// services, each its own process.
func (h *Harness) startProcesses(ctx context.Context, name string) (*system, error) {
	return h.startReplicas(ctx, name, nil)
}

// startReplicas is startProcesses with replicas[service] processes of a
// service (default 1; config always 1: the others reach it at one gRPC
// address). The first of a service is named after it, the others
// <service>-2, <service>-3 …, each with its own listen addresses.
func (h *Harness) startReplicas(ctx context.Context, name string, replicas map[string]int) (_ *system, err error) {
	logDir := filepath.Join(h.work, name)
	if err := os.MkdirAll(filepath.Join(logDir, "jetstream"), 0o700); err != nil {
		return nil, err
	}
	sys := &system{shape: ShapeProcesses, pprof: map[string]string{}, logDir: logDir, env: map[string][]string{}, bins: map[string]string{}}
	defer func() {
		if err != nil {
			_ = sys.stop()
		}
	}()
	if h.opts.Redis == string(redisInProc) {
		return nil, fmt.Errorf("the processes shape needs a redis-server (-redis inproc is standalone only)")
	}
	if h.opts.Redis == "" {
		h.opts.Redis = string(redisAuto)
	}
	if err := h.provideRedis(ctx, logDir, sys); err != nil {
		return nil, err
	}
	if sys.redisURL == "" {
		return nil, fmt.Errorf("the processes shape needs a redis-server on PATH")
	}
	natsArgs := []string{"-store", filepath.Join(logDir, "jetstream")}
	if h.opts.Profile {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		natsArgs = append(natsArgs, "-pprof", a)
		sys.pprof["natsd"] = a
	}
	natsd, line, err := startProc(ctx, logDir, procSpec{name: "natsd", bin: h.bin("natsd"), args: natsArgs, firstLine: true})
	if err != nil {
		return nil, err
	}
	sys.procs = append(sys.procs, natsd)
	var ready struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(line), &ready); err != nil {
		return nil, fmt.Errorf("natsd said %q: %w", line, err)
	}
	sys.natsURL = ready.URL
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	configHTTP, configGRPC := addrs[0], addrs[1]
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sys.adminToken = "pha_" + rand.Text()
	operatorToken, internalToken := "pho_"+rand.Text(), "phi_"+rand.Text()
	common := []string{
		"PULSEHOOKS_NATS_URL=" + sys.natsURL,
		"PULSEHOOKS_CONFIG_GRPC=" + configGRPC,
		"PULSEHOOKS_INTERNAL_TOKEN=" + internalToken,
		"PULSEHOOKS_LOG_LEVEL=" + h.opts.LogLevel,
		"PULSEHOOKS_ALLOW_NETWORKS=127.0.0.0/8",
	}
	if h.opts.Partitions > 0 {
		common = append(common, fmt.Sprintf("PULSEHOOKS_PARTITIONS=%d", h.opts.Partitions))
	}
	// slices.Concat copies: appending to common itself would let the
	// services' lists share (and overwrite) one backing array.
	sys.env["config"] = slices.Concat(common, []string{
		"PULSEHOOKS_HTTP_ADDR=" + configHTTP,
		"PULSEHOOKS_GRPC_ADDR=" + configGRPC,
		"PULSEHOOKS_ADMIN_TOKEN=" + sys.adminToken,
		"PULSEHOOKS_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key),
		"PULSEHOOKS_PUBLIC_URL=http://" + configHTTP,
		// The attempt log lives with the run's other data, not in the
		// directory the harness was started from.
		"PULSEHOOKS_ATTEMPT_LOG_DIR=" + filepath.Join(logDir, "attemptlog")})
	sys.configURL = "http://" + configHTTP
	sys.readyURL = map[string]string{"config": sys.configURL + "/readyz"}
	names := map[string][]string{"config": {"config"}}
	for _, svc := range []string{"ingest", "fanout", "delivery"} {
		for i := range max(replicas[svc], 1) {
			n := svc
			if i > 0 {
				n = fmt.Sprintf("%s-%d", svc, i+1)
			}
			names[svc] = append(names[svc], n)
			addr, err := freeAddr()
			if err != nil {
				return nil, err
			}
			switch svc {
			case "ingest":
				sys.env[n] = slices.Concat(common, []string{"PULSEHOOKS_HTTP_ADDR=" + addr, "PULSEHOOKS_INGEST_TOKEN=" + operatorToken, "PULSEHOOKS_REDIS_URL=" + sys.redisURL})
				if i == 0 {
					sys.ingestURL = "http://" + addr
				}
				sys.readyURL[n] = "http://" + addr + "/readyz"
			case "fanout":
				sys.env[n] = slices.Concat(common, []string{"PULSEHOOKS_HEALTH_ADDR=" + addr})
				sys.readyURL[n] = "http://" + addr + "/readyz"
			case "delivery":
				sys.env[n] = slices.Concat(common, []string{"PULSEHOOKS_HEALTH_ADDR=" + addr, "PULSEHOOKS_REDIS_URL=" + sys.redisURL})
				sys.readyURL[n] = "http://" + addr + "/readyz"
			}
		}
	}
	for _, svc := range []string{"config", "ingest", "fanout", "delivery"} {
		for _, n := range names[svc] {
			if h.opts.Profile {
				a, err := freeAddr()
				if err != nil {
					return nil, err
				}
				sys.env[n] = append(sys.env[n], "PULSEHOOKS_PPROF_ADDR="+a)
				sys.pprof[n] = a
			}
			sys.bins[n] = h.bin(svc)
			p, _, err := startProc(ctx, logDir, procSpec{name: n, bin: sys.bins[n], env: sys.env[n]})
			if err != nil {
				return nil, err
			}
			sys.procs = append(sys.procs, p)
			if err := waitHTTP(ctx, p, sys.readyURL[n], 120*time.Second); err != nil {
				return nil, err
			}
		}
	}
	return sys, nil
}

// restart stops the named service process with SIGTERM and starts it
// again with the same environment (its log goes to <name>-restart<n>.log);
// the new process replaces the old in procs. It may run beside the load:
// the process's exit meanwhile is not taken for a death.
func (s *system) restart(ctx context.Context, name string, n int) (*proc, error) {
	old := s.proc(name)
	if old == nil || s.bins[name] == "" {
		return nil, fmt.Errorf("no %s process to restart", name)
	}
	s.mu.Lock()
	if s.restarting == nil {
		s.restarting = map[string]bool{}
	}
	s.restarting[name] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.restarting, name)
		s.mu.Unlock()
	}()
	if err := old.stop(stopTimeout); err != nil {
		return nil, err
	}
	p, _, err := startProc(ctx, s.logDir, procSpec{name: fmt.Sprintf("%s-restart%d", name, n), bin: s.bins[name], env: s.env[name]})
	if err != nil {
		return nil, err
	}
	p.name = name
	p.carried = old.cpuTime()
	s.mu.Lock()
	for i := range s.procs {
		if s.procs[i] == old {
			s.procs[i] = p
		}
	}
	s.mu.Unlock()
	return p, nil
}
