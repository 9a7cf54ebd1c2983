package config

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	"github.com/pulsehooks/pulsehooks/services/config/relay/listen"
)

// TestRelayAcrossReplicas attaches a listener to one replica and sends the
// relay endpoint's deliveries to another: the request travels over NATS to
// the replica holding the socket. Unsigned requests are refused there;
// without a listener the route answers 503; a replica shutting down sends
// its listeners to reconnect.
// runListener runs listen.Run with cfg (whose Out is out) until stop is
// called or the test ends, and returns once it is connected, with its relay
// endpoint. stop ends it and returns Run's error.
func runListener(t *testing.T, cfg listen.Config, out *testenv.Buffer) (ens listen.Ensured, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- listen.Run(ctx, cfg) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "connected, waiting") {
			return fmt.Errorf("not connected yet: %s", out.String())
		}
		return nil
	})
	ens, err := listen.EnsureEndpoint(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ens, stop
}

func TestRelayAcrossReplicas(t *testing.T) {
	r1 := startService(t)
	r2 := &harness{t: t, nats: r1.nats, cfg: r1.cfg}
	r2.cfg.AttemptLogDir = t.TempDir()
	r2.start()
	_, key := r1.newTenant("acme")

	var hits sync.Map
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hits.Store(r.Header.Get("webhook-id"), string(body))
		w.Header().Set("X-Local", "1")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "local answer")
	}))
	defer local.Close()

	out := &testenv.Buffer{}
	cfg := listen.Config{URL: r1.base, APIKey: key, ForwardTo: local.URL, Name: "replicas", Out: out, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	ctx := context.Background()
	ens, stop := runListener(t, cfg, out)
	// r2 learns of the endpoint r1 created from its KV watcher.
	var ep *configv1.Endpoint
	testenv.WaitFor(t, 10*time.Second, func() error {
		var err error
		ep, err = r2.svc.store.GetEndpoint(ctx, "acme", ens.Endpoint.ID)
		return err
	})
	signer, err := signature.NewSigner(CurrentSecret(ep))
	if err != nil {
		t.Fatal(err)
	}
	post := func(h *harness, msgID string, signed bool) (int, string, http.Header) {
		t.Helper()
		body := `{"type":"job.completed","timestamp":"2026-12-07T10:00:00.000Z","data":{}}`
		now := time.Now()
		sig := "v1,bm90IGEgc2lnbmF0dXJl"
		if signed {
			sig = signer.Sign(msgID, now, []byte(body))
		}
		status, data, hdr := h.request(http.MethodPost, "/relay/v1/"+ens.Endpoint.ID, body, map[string]string{
			"webhook-id": msgID, "webhook-timestamp": fmt.Sprint(now.Unix()), "webhook-signature": sig,
		})
		return status, string(data), hdr
	}

	for _, tc := range []struct {
		name       string
		via        *harness
		msgID      string
		signed     bool
		wantStatus int
		wantBody   string
	}{
		{"same replica", r1, "msg_1", true, http.StatusTeapot, "local answer"},
		{"other replica", r2, "msg_2", true, http.StatusTeapot, "local answer"},
		{"unsigned", r2, "msg_3", false, http.StatusUnauthorized, "not signed for endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, hdr := post(tc.via, tc.msgID, tc.signed)
			if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
				t.Errorf("POST = %d %q, want %d %q", status, body, tc.wantStatus, tc.wantBody)
			}
			_, delivered := hits.Load(tc.msgID)
			if delivered != tc.signed {
				t.Errorf("local server got %s: %v, want %v", tc.msgID, delivered, tc.signed)
			}
			if tc.signed && hdr.Get("X-Local") != "1" {
				t.Errorf("answer headers %v lack the local server's X-Local", hdr)
			}
		})
	}

	if status, _, _ := r2.request(http.MethodGet, "/relay/v1/endpoints", nil, nil); status != http.StatusNotFound {
		t.Errorf("GET /relay/v1/endpoints = %d, want 404 (not an endpoint id)", status)
	}

	// r1 shuts down: the listener is told to go away and reconnects (to
	// the URL it was given; here r1 does not come back, so it keeps trying)
	// and the route on r2 has nobody to send to.
	r1.stop()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "connection lost") {
			return fmt.Errorf("listener did not notice the shutdown: %s", out.String())
		}
		return nil
	})
	if status, body, _ := post(r2, "msg_4", true); status != http.StatusServiceUnavailable || !strings.Contains(body, "no listener connected") {
		t.Errorf("POST without a listener = %d %q, want 503 \"no listener connected…\"", status, body)
	}
	if err := stop(); err != nil {
		t.Errorf("listen.Run = %v, want nil after cancel", err)
	}
}

// TestRelayLocalServerFailures: a local server that cannot be reached is
// 502, one slower than the endpoint's timeout is 504, both with a body that
// says so.
func TestRelayLocalServerFailures(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client hanging up
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}))
	defer slow.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	for _, tc := range []struct {
		name       string
		forwardTo  string
		wantStatus int
		wantBody   string
	}{
		{"unreachable", gone.URL, http.StatusBadGateway, "could not get an answer from the local server"},
		{"too slow", slow.URL, http.StatusGatewayTimeout, "did not answer within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &testenv.Buffer{}
			cfg := listen.Config{URL: h.base, APIKey: key, ForwardTo: tc.forwardTo, Name: tc.name, Out: out}
			ctx := context.Background()
			ens, _ := runListener(t, cfg, out)
			if status, data := h.api(key, http.MethodPatch, "/v1/endpoints/"+ens.Endpoint.ID, map[string]any{"timeout_seconds": 1}); status != http.StatusOK {
				t.Fatalf("PATCH timeout: %d %s", status, data)
			}
			ep, err := h.svc.store.GetEndpoint(ctx, "acme", ens.Endpoint.ID)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := signature.NewSigner(CurrentSecret(ep))
			if err != nil {
				t.Fatal(err)
			}
			body, now := `{"type":"job.completed"}`, time.Now()
			status, data, _ := h.request(http.MethodPost, "/relay/v1/"+ens.Endpoint.ID, body, map[string]string{
				"webhook-id": "msg_1", "webhook-timestamp": fmt.Sprint(now.Unix()), "webhook-signature": signer.Sign("msg_1", now, []byte(body)),
			})
			if status != tc.wantStatus || !strings.Contains(string(data), tc.wantBody) {
				t.Errorf("POST = %d %q, want %d %q", status, data, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

// TestRelayURLRules: with loopback refused for endpoints, an endpoint may
// take its own relay URL (on loopback) but not another endpoint's, nor any
// other URL of the relay host; the relay-endpoint route reuses by name.
func TestRelayURLRules(t *testing.T) {
	h := startService(t, func(c *Config) { c.AllowNetworks = nil })
	_, key := h.newTenant("acme")
	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/hook"})
	status, data := h.api(key, http.MethodPost, "/relay/v1/endpoints", map[string]any{"name": "dev"})
	if status != http.StatusCreated {
		t.Fatalf("create relay endpoint: %d %s", status, data)
	}
	relayEP := decode[relayEndpointView](t, data)
	if status, data := h.api(key, http.MethodPost, "/relay/v1/endpoints", map[string]any{"name": "dev", "event_types": []string{"job.completed"}}); status != http.StatusOK ||
		decode[relayEndpointView](t, data).Endpoint.ID != relayEP.Endpoint.ID {
		t.Errorf("ensuring it again: %d %s, want 200 and the same endpoint", status, data)
	}
	for _, tc := range []struct {
		name       string
		url        string
		wantStatus int
	}{
		{"its own relay URL", h.svc.RelayURL() + "/relay/v1/" + ep.ID, http.StatusOK},
		{"another endpoint's relay URL", relayEP.Endpoint.URL, http.StatusUnprocessableEntity},
		{"another route of the relay host", h.svc.RelayURL() + "/v1/endpoints", http.StatusUnprocessableEntity},
		{"its relay path with a query", h.svc.RelayURL() + "/relay/v1/" + ep.ID + "?x=1", http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, data := h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"url": tc.url}); status != tc.wantStatus {
				t.Errorf("PATCH url %s = %d %s, want %d", tc.url, status, data, tc.wantStatus)
			}
		})
	}
}
