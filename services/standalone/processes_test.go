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

// startProcess runs a service binary with env; it is stopped with SIGTERM
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
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within 30s of SIGINT", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
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

// TestServicesAsSeparateProcesses runs the production shape: each service its
// own process, against a nats-server and a redis-server, and a job event still
// reaches the subscribed endpoint, signed.
func TestServicesAsSeparateProcesses(t *testing.T) {
	bin := buildServices(t)
	natsSrv := testenv.StartNATS(t)
	redis := testenv.StartRedis(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	adminToken, operatorToken, internalToken := "admin-token-"+strconv.Itoa(os.Getpid())+"-0123456789", "operator-token-0123456789", "internal-token-0123456789"
	configHTTP, configGRPC, ingestHTTP := freeAddr(t), freeAddr(t), freeAddr(t)
	fanoutHealth, deliveryHealth := freeAddr(t), freeAddr(t)
	common := map[string]string{
		"PULSEHOOKS_NATS_URL":       natsSrv.URL(),
		"PULSEHOOKS_CONFIG_GRPC":    configGRPC,
		"PULSEHOOKS_INTERNAL_TOKEN": internalToken,
		"PULSEHOOKS_PARTITIONS":     "16",
		"PULSEHOOKS_LOG_LEVEL":      "debug",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cfgProc := startProcess(t, bin, "config", with(map[string]string{
		"PULSEHOOKS_HTTP_ADDR":   configHTTP,
		"PULSEHOOKS_GRPC_ADDR":   configGRPC,
		"PULSEHOOKS_ADMIN_TOKEN": adminToken,
		"PULSEHOOKS_MASTER_KEY":  base64.StdEncoding.EncodeToString(key),
		"PULSEHOOKS_PUBLIC_URL":  "http://" + configHTTP,
		// The attempt log's directory; the default is relative to the
		// working directory, which is the source tree here.
		"PULSEHOOKS_ATTEMPT_LOG_DIR": t.TempDir(),
		// Endpoint URLs on loopback are refused unless allowed.
		"PULSEHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
	}))
	waitHTTP(t, cfgProc, "http://"+configHTTP+"/readyz")
	ingProc := startProcess(t, bin, "ingest", with(map[string]string{
		"PULSEHOOKS_HTTP_ADDR":      ingestHTTP,
		"PULSEHOOKS_OPERATOR_TOKEN": operatorToken,
	}))
	fanProc := startProcess(t, bin, "fanout", with(map[string]string{"PULSEHOOKS_HEALTH_ADDR": fanoutHealth}))
	delProc := startProcess(t, bin, "delivery", with(map[string]string{
		"PULSEHOOKS_HEALTH_ADDR":    deliveryHealth,
		"PULSEHOOKS_REDIS_URL":      redis.URL(),
		"PULSEHOOKS_ALLOW_NETWORKS": "127.0.0.0/8",
	}))
	waitHTTP(t, ingProc, "http://"+ingestHTTP+"/readyz")
	waitHTTP(t, fanProc, "http://"+fanoutHealth+"/readyz")
	waitHTTP(t, delProc, "http://"+deliveryHealth+"/readyz")

	admin := map[string]string{"authorization": "Bearer " + adminToken}
	base := "http://" + configHTTP
	if code := call(t, "POST", base+"/admin/v1/tenants", admin, map[string]string{"id": "acme", "name": "Acme"}, nil); code != http.StatusCreated {
		t.Fatalf("create tenant: status %d", code)
	}
	var apiKey struct {
		Key string `json:"key"`
	}
	if code := call(t, "POST", base+"/admin/v1/tenants/acme/api-keys", admin, map[string]string{}, &apiKey); code != http.StatusCreated {
		t.Fatalf("create API key: status %d", code)
	}
	recv := newReceiver(t)
	var ep struct {
		ID string `json:"id"`
	}
	tenantKey := map[string]string{"x-api-key": apiKey.Key}
	if code := call(t, "POST", base+"/v1/endpoints", tenantKey, map[string]any{"url": recv.url("acme"), "event_types": []string{"job.completed"}}, &ep); code != http.StatusCreated {
		t.Fatalf("create endpoint: status %d", code)
	}
	var secret struct {
		Key string `json:"key"`
	}
	call(t, "GET", base+"/v1/endpoints/"+ep.ID+"/secret", tenantKey, nil, &secret)

	// Over HTTP…
	var accepted struct {
		MessageID string `json:"message_id"`
	}
	if code := call(t, "POST", "http://"+ingestHTTP+"/v1/events", map[string]string{"authorization": "Bearer " + operatorToken},
		map[string]any{"tenant_id": "acme", "event_type": "job.completed", "data": map[string]any{"job_id": "job_http"}}, &accepted); code != http.StatusAccepted {
		t.Fatalf("publish over HTTP: status %d", code)
	}
	// …and over NATS, as a processor would.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := pulseclient.New(natsSrv.Conn(t)).Publish(ctx, pulseclient.PublishInput{TenantID: "acme", EventType: "job.completed", Data: map[string]any{"job_id": "job_nats"}})
	if err != nil {
		t.Fatalf("publish over NATS: %v", err)
	}
	got := recv.waitCount(t, "acme", 2)
	ids := map[string]bool{}
	for _, g := range got {
		verify(t, secret.Key, g)
		ids[g.Header.Get("webhook-id")] = true
	}
	if !ids[accepted.MessageID] || !ids[res.MessageID] || len(got) != 2 {
		t.Errorf("received webhook ids %v, want exactly %s and %s", ids, accepted.MessageID, res.MessageID)
	}
}
