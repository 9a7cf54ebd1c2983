package standalone_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	"github.com/pulsehooks/pulsehooks/services/config/relay/listen"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// connTracker dials like net.Dialer and can cut every connection it made.
type connTracker struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *connTracker) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *connTracker) cutAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}

// TestListenRelaysDeliveriesToALocalServer runs `pulsehooks listen` (the
// library the command runs) against the whole system, with the SSRF policy
// refusing loopback for ordinary endpoints: the relay endpoint's deliveries
// reach a local server, signed, and its answer is the attempt's result; the
// client reconnects after its connection is cut; another tenant can neither
// attach nor aim an endpoint at the relay URL; with no listener, attempts
// fail and are retried.
func TestListenRelaysDeliveriesToALocalServer(t *testing.T) {
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL(), hooks: func(c *standalone.Config) {
		c.AllowNetworks = []netip.Prefix{} // nothing private: only the relay route may be reached on loopback
	}})
	a := sys.createTenant(t, "tenant-a")
	b := sys.createTenant(t, "tenant-b")
	hA := map[string]string{"x-api-key": a.Key}

	var (
		localMu sync.Mutex
		local   []received
	)
	localSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		localMu.Lock()
		local = append(local, received{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Status: http.StatusAccepted})
		localMu.Unlock()
		w.Header().Set("X-Local", "yes")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "hello from the laptop")
	}))
	defer localSrv.Close()
	localCount := func(n int) []received {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, func() error {
			localMu.Lock()
			defer localMu.Unlock()
			if len(local) < n {
				return fmt.Errorf("local server got %d requests, want %d", len(local), n)
			}
			return nil
		})
		localMu.Lock()
		defer localMu.Unlock()
		return append([]received(nil), local...)
	}

	// An ordinary endpoint on loopback is still refused.
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints", hA, map[string]any{"url": localSrv.URL + "/hook"}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("ordinary loopback endpoint: status %d, want 422", code)
	}

	tracker := &connTracker{}
	out := &syncBuffer{}
	cfg := listen.Config{
		URL:        sys.svc.ConfigURL(),
		APIKey:     a.Key,
		ForwardTo:  localSrv.URL + "/hook",
		Name:       "laptop",
		EventTypes: []string{"job.completed"},
		Out:        out,
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: tracker.DialContext}},
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- listen.Run(ctx, cfg) }()
	connected := func(n int) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, func() error {
			if got := strings.Count(out.String(), "connected, waiting"); got < n {
				return fmt.Errorf("listener connected %d times, want %d; output:\n%s", got, n, out.String())
			}
			return nil
		})
	}
	connected(1)

	// The same name finds the same endpoint again.
	ens, err := listen.EnsureEndpoint(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ens.Created || !strings.Contains(out.String(), "created relay endpoint "+ens.Endpoint.ID) {
		t.Fatalf("second ensure = %+v, want the endpoint the listener created; output:\n%s", ens, out.String())
	}
	epID, relayURL := ens.Endpoint.ID, ens.Endpoint.URL
	if want := sys.svc.ConfigURL() + "/relay/v1/" + epID; relayURL != want {
		t.Errorf("relay endpoint URL = %q, want %q", relayURL, want)
	}
	var sec struct {
		Key string `json:"key"`
	}
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+epID+"/secret", hA, nil, &sec); code != http.StatusOK {
		t.Fatalf("read secret: %d", code)
	}

	publish := func(eventType string) string {
		t.Helper()
		code, res := sys.publishHTTP(t, map[string]any{"tenant_id": a.ID, "event_type": eventType, "data": jobData(eventType, "job_1")})
		if code != http.StatusAccepted {
			t.Fatalf("publish: %d %v", code, res)
		}
		return res["message_id"].(string)
	}

	msg1 := publish("job.completed")
	publish("job.failed") // filtered out by --events
	got := localCount(1)[0]
	verify(t, sec.Key, got)
	if got.Path != "/hook" || got.Header.Get("webhook-id") != msg1 {
		t.Errorf("local request: path %q, webhook-id %q; want /hook, %s", got.Path, got.Header.Get("webhook-id"), msg1)
	}
	waitState(t, sys, a, msg1, epID, "succeeded", 1)
	var attempts apiList[apiAttempt]
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+epID+"/attempts", hA, nil, &attempts); code != http.StatusOK || len(attempts.Data) != 1 {
		t.Fatalf("attempts: %d %+v", code, attempts)
	}
	var full apiAttempt
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/attempts/"+attempts.Data[0].ID, hA, nil, &full); code != http.StatusOK {
		t.Fatalf("GET attempt: %d", code)
	}
	if full.StatusCode != http.StatusAccepted || full.Outcome != "success" || full.ResponseBody != "hello from the laptop" {
		t.Errorf("attempt = %d %s %q, want the local answer 202 success \"hello from the laptop\"", full.StatusCode, full.Outcome, full.ResponseBody)
	}
	if !strings.Contains(out.String(), "job.completed") || !strings.Contains(out.String(), msg1+"  -> 202") {
		t.Errorf("the listener did not print the request; output:\n%s", out.String())
	}

	// A request not signed for the endpoint never reaches the local server.
	status, body, err := request("POST", relayURL, map[string]string{"webhook-id": "msg_x", "webhook-timestamp": fmt.Sprint(time.Now().Unix()), "webhook-signature": "v1,AAAA"}, `{"type":"job.completed"}`)
	if err != nil || status != http.StatusUnauthorized {
		t.Errorf("forged request to the relay URL: %d %q %v, want 401", status, body, err)
	}

	// Another tenant can neither attach nor use the relay URL.
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.svc.ConfigURL(), "http")+"/relay/v1/endpoints/"+epID+"/listen",
		&websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {b.Key}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("tenant b attaching to a's relay endpoint: %v, %v; want 404", resp, err)
	}
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints", map[string]string{"x-api-key": b.Key}, map[string]any{"url": relayURL}, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("tenant b making an endpoint with a's relay URL: %d, want 422", code)
	}

	// Cut the connection: the listener reconnects and deliveries continue.
	tracker.cutAll()
	connected(2)
	msg2 := publish("job.completed")
	if got := localCount(2)[1]; got.Header.Get("webhook-id") != msg2 {
		t.Errorf("after reconnecting: webhook-id %q, want %s", got.Header.Get("webhook-id"), msg2)
	}
	// The first try may still have gone to the cut connection (502, retried).
	testenv.WaitFor(t, 30*time.Second, func() error {
		d, err := deliveryState(t, sys, a, msg2, epID)
		if err == nil && d.State != "succeeded" {
			err = fmt.Errorf("delivery of %s is %s", msg2, d.State)
		}
		return err
	})

	// Stopped (Ctrl-C): Run returns nil; attempts fail with 503 and are retried.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("listen.Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen.Run did not return after cancel")
	}
	msg3 := publish("job.completed")
	waitState(t, sys, a, msg3, epID, "failed", 5)
	var failed apiList[apiAttempt]
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+epID+"/attempts?outcome=http_status", hA, nil, &failed); code != http.StatusOK || len(failed.Data) != 5 {
		t.Fatalf("failed attempts: %d, %d of them, want 5", code, len(failed.Data))
	}
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/attempts/"+failed.Data[0].ID, hA, nil, &full); code != http.StatusOK {
		t.Fatalf("GET attempt: %d", code)
	}
	if full.StatusCode != http.StatusServiceUnavailable || !strings.Contains(full.ResponseBody, "no listener connected") {
		t.Errorf("attempt without a listener = %d %q, want 503 \"no listener connected…\"", full.StatusCode, full.ResponseBody)
	}
	if n := len(localCount(2)); n != 2 {
		t.Errorf("local server got %d requests, want 2", n)
	}
	t.Logf("listener output:\n%s", out.String())
}
