package config

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

const (
	testAdminToken    = "admin-token-for-tests-0123456789"
	testInternalToken = "internal-token-for-tests"
)

// testMasterKey is a fixed 32-byte master key for tests.
var testMasterKey = bytes.Repeat([]byte{0x42}, 32)

// testClock is a settable clock for expiry tests.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness runs a config Service against an embedded nats-server.
type harness struct {
	t      *testing.T
	nats   *testenv.NATS
	cfg    Config
	clock  *testClock
	svc    *Service
	base   string
	cancel context.CancelFunc
	done   chan error
}

// startService starts NATS and a Service on loopback ports; mutate adjusts
// the configuration. The service is stopped when the test ends.
func startService(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	h := newHarness(t, mutate...)
	h.start()
	return h
}

// newHarness starts NATS and prepares, without starting, a Service; set
// fields such as clock, then call start.
func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, nats: testenv.StartNATS(t)}
	h.cfg = Config{
		HTTPAddr:      "127.0.0.1:0",
		GRPCAddr:      "127.0.0.1:0",
		AdminToken:    testAdminToken,
		InternalToken: testInternalToken,
		MasterKey:     testMasterKey,
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		AttemptLogDir: t.TempDir(),
	}
	for _, m := range mutate {
		m(&h.cfg)
	}
	return h
}

// start builds and runs a new Service on the harness's NATS server.
func (h *harness) start() {
	h.t.Helper()
	nc := h.nats.Conn(h.t)
	h.t.Cleanup(h.stop) // before nc is closed: cleanups run last-in first-out
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := New(ctx, h.cfg, Deps{NATS: nc})
	if err != nil {
		cancel()
		h.t.Fatalf("New: %v", err)
	}
	if h.clock != nil {
		svc.store.now = h.clock.Now
	}
	h.svc, h.cancel, h.done = svc, cancel, make(chan error, 1)
	h.base = "http://" + svc.HTTPAddr()
	go func() { h.done <- svc.Run(ctx) }()
	testenv.WaitFor(h.t, 10*time.Second, func() error {
		status, _, _ := h.request(http.MethodGet, "/readyz", nil, nil)
		if status != http.StatusOK {
			return fmt.Errorf("GET /readyz = %d, want 200", status)
		}
		return nil
	})
}

// stop ends Run and checks that it returned nil.
func (h *harness) stop() {
	h.t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		h.t.Errorf("Run did not return within 15s of cancellation")
	}
	h.cancel = nil
}

// request sends an HTTP request; body may be nil, a string (sent as is) or
// a value encoded as JSON.
func (h *harness) request(method, path string, body any, header map[string]string) (int, []byte, http.Header) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatalf("encode request body: %v", err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.base+path, r)
	if err != nil {
		h.t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("read response of %s %s: %v", method, path, err)
	}
	return resp.StatusCode, data, resp.Header
}

// admin sends an operator API request.
func (h *harness) admin(method, path string, body any) (int, []byte) {
	h.t.Helper()
	status, data, _ := h.request(method, path, body, map[string]string{"Authorization": "Bearer " + testAdminToken})
	return status, data
}

// api sends a tenant REST API request with an API key.
func (h *harness) api(key, method, path string, body any) (int, []byte) {
	h.t.Helper()
	status, data, _ := h.request(method, path, body, map[string]string{"X-Api-Key": key})
	return status, data
}

// newTenant creates a tenant and an API key through the operator API.
func (h *harness) newTenant(id string) (tenantID, apiKey string) {
	h.t.Helper()
	status, body := h.admin(http.MethodPost, "/admin/v1/tenants", map[string]string{"id": id, "name": "Tenant " + id})
	if status != http.StatusCreated {
		h.t.Fatalf("create tenant %s: status %d: %s", id, status, body)
	}
	status, body = h.admin(http.MethodPost, "/admin/v1/tenants/"+id+"/api-keys", map[string]string{"name": "test"})
	if status != http.StatusCreated {
		h.t.Fatalf("create API key for %s: status %d: %s", id, status, body)
	}
	return id, decode[CreatedAPIKey](h.t, body).Key
}

// newEndpoint creates an endpoint and returns its view.
func (h *harness) newEndpoint(key string, body map[string]any) endpointView {
	h.t.Helper()
	status, data := h.api(key, http.MethodPost, "/v1/endpoints", body)
	if status != http.StatusCreated {
		h.t.Fatalf("create endpoint: status %d: %s", status, data)
	}
	return decode[endpointView](h.t, data)
}

// decode decodes a JSON response body.
func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, data, err)
	}
	return v
}

// wantError checks an error response's status and code.
func wantError(t *testing.T, status int, data []byte, wantStatus int, wantCode string) errorDetail {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status = %d, want %d (body %s)", status, wantStatus, data)
	}
	got := decode[errorBody](t, data).Error
	if got.Code != wantCode {
		t.Errorf("error code = %q, want %q (message %q)", got.Code, wantCode, got.Message)
	}
	if got.Message == "" {
		t.Errorf("error message is empty")
	}
	return got
}
