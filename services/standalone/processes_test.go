package standalone_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// serviceBinaries builds the four service binaries once per test run.
var serviceBinaries = struct {
	once sync.Once
	dir  string
	err  error
}{}

func buildServices(t *testing.T) string {
	t.Helper()
	serviceBinaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "pulsehooks-bin-")
		if err != nil {
			serviceBinaries.err = err
			return
		}
		serviceBinaries.dir = dir
		args := []string{"build", "-o", dir + string(os.PathSeparator)}
		for _, s := range []string{"config", "ingest", "fanout", "delivery"} {
			args = append(args, "github.com/pulsehooks/pulsehooks/services/"+s+"/cmd/"+s)
		}
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			serviceBinaries.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if serviceBinaries.err != nil {
		t.Fatal(serviceBinaries.err)
	}
	return serviceBinaries.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if serviceBinaries.dir != "" {
		_ = os.RemoveAll(serviceBinaries.dir)
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is one service binary running as its own OS process.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	// health is the /healthz and /readyz listener of fanout and delivery.
	health string
}

type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// startProcess runs a service binary with env; it is stopped with SIGINT
// when the test ends, and its output is shown when the test failed.
func startProcess(t *testing.T, bin, name string, env map[string]string) *process {
	t.Helper()
	p := &process{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(bin, name))
	p.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		stopping := time.Now()
		_ = p.cmd.Process.Signal(os.Interrupt) // fails harmlessly if it was killed
		defer func() {
			if d := time.Since(stopping); d > 2*time.Second {
				t.Logf("%s (pid %d) took %v to stop", name, p.cmd.Process.Pid, d.Round(time.Millisecond))
			}
		}()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within 30s of SIGINT", name)
		}
		if t.Failed() {
			t.Logf("%s (pid %d) output:\n%s", name, p.cmd.Process.Pid, p.out.String())
		}
	})
	return p
}

// kill sends SIGKILL to the process, as a crash or the OOM killer would:
// no shutdown code runs, nothing buffered is flushed. It waits until the
// process is gone, and fails the test if it had already exited.
func (p *process) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited before it was killed: %s", p.name, p.out.String())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after SIGKILL", p.name)
	}
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, p *process, url string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, func() error {
		select {
		case <-p.done:
			t.Fatalf("%s exited: %s", p.name, p.out.String())
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", url, resp.StatusCode)
		}
		return nil
	})
}

// cluster is the production shape: config, ingest, fanout and delivery each
// their own OS process, against a nats-server and a redis-server.
type cluster struct {
	bin           string
	nats          *testenv.NATS
	redis         *testenv.Redis
	adminToken    string
	operatorToken string
	configHTTP    string
	configGRPC    string
	ingestHTTP    string
	// common is the environment every service gets.
	common map[string]string
}

// newCluster builds the binaries and starts nats-server and redis-server;
// logLevel is the services' log level. No service is started yet.
func newCluster(t *testing.T, logLevel string) *cluster {
	t.Helper()
	c := &cluster{
		bin:           buildServices(t),
		nats:          testenv.StartNATS(t),
		redis:         testenv.StartRedis(t),
		adminToken:    "admin-token-" + strconv.Itoa(os.Getpid()) + "-0123456789",
		operatorToken: "operator-token-0123456789",
		configHTTP:    freeAddr(t),
		configGRPC:    freeAddr(t),
		ingestHTTP:    freeAddr(t),
	}
	c.common = map[string]string{
		"PULSEHOOKS_NATS_URL":       c.nats.URL(),
		"PULSEHOOKS_CONFIG_GRPC":    c.configGRPC,
		"PULSEHOOKS_INTERNAL_TOKEN": "internal-token-0123456789",
		"PULSEHOOKS_PARTITIONS":     "16",
		"PULSEHOOKS_LOG_LEVEL":      logLevel,
	}
	return c
}

// env is the common environment with extra added.
func (c *cluster) env(extra map[string]string) map[string]string { return merge(c.common, extra) }

// startConfig starts the config service and waits until it is ready.
func (c *cluster) startConfig(t *testing.T) *process {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	p := startProcess(t, c.bin, "config", c.env(map[string]string{
		"PULSEHOOKS_HTTP_ADDR":   c.configHTTP,
		"PULSEHOOKS_GRPC_ADDR":   c.configGRPC,
		"PULSEHOOKS_ADMIN_TOKEN": c.adminToken,
		"PULSEHOOKS_MASTER_KEY":  base64.StdEncoding.EncodeToString(key),
		"PULSEHOOKS_PUBLIC_URL":  "http://" + c.configHTTP,
		// The attempt log's directory; the default is relative to the
		// working directory, which is the source tree here.
		"PULSEHOOKS_ATTEMPT_LOG_DIR": t.TempDir(),
		// Endpoint URLs on loopback are refused unless allowed.
		"PULSEHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
	}))
	waitHTTP(t, p, "http://"+c.configHTTP+"/readyz")
	return p
}

// startIngest starts the ingest service; wait for it with waitIngest.
func (c *cluster) startIngest(t *testing.T) *process {
	t.Helper()
	return startProcess(t, c.bin, "ingest", c.env(map[string]string{
		"PULSEHOOKS_HTTP_ADDR":    c.ingestHTTP,
		"PULSEHOOKS_INGEST_TOKEN": c.operatorToken,
	}))
}

func (c *cluster) waitIngest(t *testing.T, p *process) {
	t.Helper()
	waitHTTP(t, p, "http://"+c.ingestHTTP+"/readyz")
}

// startFanout starts a fanout process with extra environment on a fresh
// health address; wait for it with waitReady.
func (c *cluster) startFanout(t *testing.T, extra map[string]string) *process {
	t.Helper()
	health := freeAddr(t)
	p := startProcess(t, c.bin, "fanout", c.env(merge(extra, map[string]string{"PULSEHOOKS_HEALTH_ADDR": health})))
	p.health = health
	return p
}

// startDelivery starts a delivery process, with Redis and loopback
// endpoints allowed, extra environment and a fresh health address; wait for
// it with waitReady.
func (c *cluster) startDelivery(t *testing.T, extra map[string]string) *process {
	t.Helper()
	health := freeAddr(t)
	p := startProcess(t, c.bin, "delivery", c.env(merge(extra, map[string]string{
		"PULSEHOOKS_HEALTH_ADDR":    health,
		"PULSEHOOKS_REDIS_URL":      c.redis.URL(),
		"PULSEHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
	})))
	p.health = health
	return p
}

// waitReady waits until a fanout or delivery process reports ready.
func waitReady(t *testing.T, p *process) {
	t.Helper()
	waitHTTP(t, p, "http://"+p.health+"/readyz")
}

// merge returns a's entries overridden by b's.
func merge(a, b map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func (c *cluster) configURL() string { return "http://" + c.configHTTP }

// createTenant makes a tenant through the operator API, with an API key.
func (c *cluster) createTenant(t *testing.T, id string) tenant {
	t.Helper()
	admin := map[string]string{"authorization": "Bearer " + c.adminToken}
	if code := call(t, "POST", c.configURL()+"/admin/v1/tenants", admin, map[string]string{"id": id, "name": "Tenant " + id}, nil); code != http.StatusCreated {
		t.Fatalf("create tenant %s: status %d", id, code)
	}
	var key struct {
		Key string `json:"key"`
	}
	if code := call(t, "POST", c.configURL()+"/admin/v1/tenants/"+id+"/api-keys", admin, map[string]string{}, &key); code != http.StatusCreated || key.Key == "" {
		t.Fatalf("create API key for %s: status %d, key %q", id, code, key.Key)
	}
	return tenant{ID: id, Key: key.Key}
}

// createEndpoint makes an endpoint through the tenant REST API and reads
// its signing secret.
func (c *cluster) createEndpoint(t *testing.T, tn tenant, spec map[string]any) endpoint {
	t.Helper()
	tenantKey := map[string]string{"x-api-key": tn.Key}
	var ep struct {
		ID string `json:"id"`
	}
	if code := call(t, "POST", c.configURL()+"/v1/endpoints", tenantKey, spec, &ep); code != http.StatusCreated {
		t.Fatalf("create endpoint %v: status %d", spec, code)
	}
	var sec struct {
		Key string `json:"key"`
	}
	if code := call(t, "GET", c.configURL()+"/v1/endpoints/"+ep.ID+"/secret", tenantKey, nil, &sec); code != http.StatusOK {
		t.Fatalf("read secret of %s: status %d", ep.ID, code)
	}
	return endpoint{ID: ep.ID, Secret: sec.Key}
}

// publishHTTP sends a job event through the ingest HTTP API and returns the
// message id it was accepted under.
func (c *cluster) publishHTTP(t *testing.T, tenantID, eventType string, data map[string]any) string {
	t.Helper()
	var accepted struct {
		MessageID string `json:"message_id"`
	}
	if code := call(t, "POST", "http://"+c.ingestHTTP+"/v1/events", map[string]string{"authorization": "Bearer " + c.operatorToken},
		map[string]any{"tenant_id": tenantID, "event_type": eventType, "data": data}, &accepted); code != http.StatusAccepted {
		t.Fatalf("publish over HTTP: status %d", code)
	}
	return accepted.MessageID
}

// TestServicesAsSeparateProcesses runs the production shape: each service its
// own process, against a nats-server and a redis-server, and a job event still
// reaches the subscribed endpoint, signed.
func TestServicesAsSeparateProcesses(t *testing.T) {
	c := newCluster(t, "debug")
	c.startConfig(t)
	ingProc := c.startIngest(t)
	fanProc := c.startFanout(t, nil)
	delProc := c.startDelivery(t, nil)
	c.waitIngest(t, ingProc)
	waitReady(t, fanProc)
	waitReady(t, delProc)

	tn := c.createTenant(t, "acme")
	recv := newReceiver(t)
	ep := c.createEndpoint(t, tn, map[string]any{"url": recv.url("acme"), "event_types": []string{"job.completed"}})

	// Over HTTP…
	httpID := c.publishHTTP(t, "acme", "job.completed", jobData("job.completed", "job_http"))
	// …and over NATS, as a processor would.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := pulseclient.New(c.nats.Conn(t)).Publish(ctx, pulseclient.PublishInput{TenantID: "acme", EventType: "job.completed", Data: jobData("job.completed", "job_nats")})
	if err != nil {
		t.Fatalf("publish over NATS: %v", err)
	}
	got := recv.waitCount(t, "acme", 2)
	ids := map[string]bool{}
	for _, g := range got {
		verify(t, ep.Secret, g)
		ids[g.Header.Get("webhook-id")] = true
	}
	if !ids[httpID] || !ids[res.MessageID] || len(got) != 2 {
		t.Errorf("received webhook ids %v, want exactly %s and %s", ids, httpID, res.MessageID)
	}
}
