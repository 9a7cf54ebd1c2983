package standalone_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// system is one running standalone system under test.
type system struct {
	t      *testing.T
	svc    *standalone.Service
	cancel context.CancelFunc
	done   chan error
}

// sysOptions are what a test may change about the system it starts.
type sysOptions struct {
	dataDir  string
	redisURL string
	hooks    func(*standalone.Config)
	tp       trace.TracerProvider
	// metrics, when set, gives every service its meter provider and serves
	// /metrics on the config service's listener.
	metrics *metrics.Provider
	// out receives the banner, when set.
	out io.Writer
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if os.Getenv("PULSEHOOKS_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startSystem starts every service in one process on loopback, against the
// given data directory and a real redis-server.
func startSystem(t *testing.T, o sysOptions) *system {
	t.Helper()
	if o.tp == nil {
		o.tp = noop.NewTracerProvider()
	}
	cfg := standalone.Config{
		DataDir:        o.dataDir,
		NATSPort:       -1,
		ConfigHTTPAddr: "127.0.0.1:0",
		ConfigGRPCAddr: "127.0.0.1:0",
		IngestHTTPAddr: "127.0.0.1:0",
		RedisURL:       o.redisURL,
		AllowNetworks:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Partitions:     8,
		RetryDelay:     200 * time.Millisecond,
		RetrySchedule:  []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond},
	}
	if o.hooks != nil {
		o.hooks(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	deps := standalone.Deps{Logger: testLogger(t), TracerProvider: o.tp, Out: o.out}
	if o.metrics != nil {
		deps.MeterProvider, deps.MetricsHandler, deps.MetricLabels = o.metrics.MeterProvider(), o.metrics.Handler(), o.metrics.Labels
	}
	svc, err := standalone.New(ctx, cfg, deps)
	if err != nil {
		cancel()
		t.Fatalf("start system: %v", err)
	}
	s := &system{t: t, svc: svc, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- svc.Run(ctx) }()
	t.Cleanup(s.stop)
	return s
}

// stop shuts the system down gracefully and waits for it.
func (s *system) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("system Run returned %v", err)
		}
	case <-time.After(60 * time.Second):
		s.t.Errorf("system did not stop within 60s")
	}
}

// call makes an HTTP request with a JSON body and decodes a JSON answer.
func call(t *testing.T, method, url string, headers map[string]string, body any, out any) int {
	t.Helper()
	status, raw, err := request(method, url, headers, body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, raw, err)
		}
	}
	return status
}

// request sends an HTTP request with body (nil, raw []byte or string, or a
// value encoded as JSON) and returns the status and the whole answer.
func request(method, url string, headers map[string]string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return 0, nil, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("new request: %w", err)
	}
	if rd != nil {
		req.Header.Set("content-type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s %s: %w", method, url, err)
	}
	return resp.StatusCode, raw, nil
}

// tenant is a tenant made through the operator API, with an API key.
type tenant struct {
	ID  string
	Key string
}

func (s *system) admin() map[string]string {
	return map[string]string{"authorization": "Bearer " + s.svc.AdminToken()}
}

func (s *system) createTenant(t *testing.T, id string) tenant {
	t.Helper()
	if code := call(t, "POST", s.svc.ConfigURL()+"/admin/v1/tenants", s.admin(), map[string]string{"id": id, "name": "Tenant " + id}, nil); code != http.StatusCreated {
		t.Fatalf("create tenant %s: status %d", id, code)
	}
	var key struct {
		Key string `json:"key"`
	}
	if code := call(t, "POST", s.svc.ConfigURL()+"/admin/v1/tenants/"+id+"/api-keys", s.admin(), map[string]string{"name": "test"}, &key); code != http.StatusCreated || key.Key == "" {
		t.Fatalf("create API key for %s: status %d, key %q", id, code, key.Key)
	}
	return tenant{ID: id, Key: key.Key}
}

// endpoint is an endpoint made through the tenant REST API.
type endpoint struct {
	ID     string
	Secret string
}

func (s *system) createEndpoint(t *testing.T, tn tenant, spec map[string]any) endpoint {
	t.Helper()
	var ep struct {
		ID string `json:"id"`
	}
	if code := call(t, "POST", s.svc.ConfigURL()+"/v1/endpoints", map[string]string{"x-api-key": tn.Key}, spec, &ep); code != http.StatusCreated {
		t.Fatalf("create endpoint %v: status %d", spec, code)
	}
	var sec struct {
		Key string `json:"key"`
	}
	if code := call(t, "GET", s.svc.ConfigURL()+"/v1/endpoints/"+ep.ID+"/secret", map[string]string{"x-api-key": tn.Key}, nil, &sec); code != http.StatusOK {
		t.Fatalf("read secret of %s: status %d", ep.ID, code)
	}
	return endpoint{ID: ep.ID, Secret: sec.Key}
}

// publishHTTP sends a job event through the ingest HTTP API.
func (s *system) publishHTTP(t *testing.T, body any) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	code := call(t, "POST", s.svc.IngestURL()+"/v1/events", map[string]string{"authorization": "Bearer " + s.svc.OperatorToken()}, body, &out)
	return code, out
}

func (s *system) js(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.svc.NATSURL())
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func (s *system) nc(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.svc.NATSURL())
	if err != nil {
		t.Fatalf("connect to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// settled waits until every stored event has been fanned out and every
// delivery handled: the fanout consumer has nothing pending and the
// DELIVERIES work queue is empty. After that, an endpoint that got nothing
// will get nothing.
func settled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, func() error { return streams.Idle(context.Background(), js) })
}

// streamMsgs is the number of messages in a stream.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	si, err := st.Info(context.Background())
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return si.State.Msgs
}

// received is one request a receiver got.
type received struct {
	Path   string
	Header http.Header
	Body   []byte
	// Status is what the receiver answered.
	Status int
}

// receiver is a webhook receiver on loopback that records every request.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{status: http.StatusOK}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := r.status
		r.got = append(r.got, received{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, Status: status})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// url is the receiver URL of one named endpoint.
func (r *receiver) url(name string) string { return r.srv.URL + "/" + name }

// requests returns what the named endpoint received.
func (r *receiver) requests(name string) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []received
	for _, g := range r.got {
		if g.Path == "/"+name {
			out = append(out, g)
		}
	}
	return out
}

func (r *receiver) setStatus(code int) {
	r.mu.Lock()
	r.status = code
	r.mu.Unlock()
}

// waitCount waits until the named endpoint received n requests.
func (r *receiver) waitCount(t *testing.T, name string, n int) []received {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, func() error {
		if got := len(r.requests(name)); got < n {
			return fmt.Errorf("endpoint %s received %d requests, want %d", name, got, n)
		}
		return nil
	})
	return r.requests(name)
}

// verify checks a request's Standard Webhooks signature with secret.
func verify(t *testing.T, secret string, got received) {
	t.Helper()
	v, err := signature.NewVerifier(secret)
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	if err := v.Verify(got.Header, got.Body); err != nil {
		t.Errorf("signature of %s does not verify: %v (headers %v)", got.Path, err, got.Header)
	}
}

// jobData returns the data of a job event of the given type that is valid
// against the built-in catalog's schema of that type.
func jobData(eventType, jobID string) map[string]any {
	const at = "2026-01-15T10:00:00Z"
	d := map[string]any{"job_id": jobID}
	switch eventType {
	case "job.created":
		d["status"], d["created_at"] = "queued", at
	case "job.processing":
		d["status"], d["started_at"] = "processing", at
	case "job.completed":
		d["status"], d["completed_at"], d["result_url"] = "completed", at, "https://api.pulse.example/v1/jobs/"+jobID+"/result"
	case "job.failed":
		d["status"], d["failed_at"] = "failed", at
		d["error"] = map[string]any{"code": "unreadable_document", "message": "The document cannot be read."}
	case "job.cancelled":
		d["status"], d["cancelled_at"] = "cancelled", at
	}
	return d
}
