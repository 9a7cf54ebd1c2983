package config

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/pkg/deliverycontrol"
)

// TestRetryNowAPIRefusals: POST /v1/endpoints/{id}/retry-now answers 503
// with a plain message when no delivery worker is subscribed and when the
// one asked does not answer within 2 s; another tenant's endpoint is 404 and
// a disabled one 409, both without asking a worker; a body that is not
// JSON is 400. (The 200 path, with real workers, is services/standalone
// TestRetryNowThroughTheAPI.)
func TestRetryNowAPIRefusals(t *testing.T) {
	h := startService(t)
	_, acme := h.newTenant("acme")
	_, other := h.newTenant("other")
	ep := h.newEndpoint(acme, map[string]any{"url": "https://example.com/hook"})
	off := h.newEndpoint(acme, map[string]any{"url": "https://example.com/off", "enabled": false})
	path := "/v1/endpoints/" + ep.ID + "/retry-now"

	status, body := h.api(acme, http.MethodPost, path, nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "no delivery worker answered; try again") {
		t.Errorf("retry now with no worker = %d %s, want 503 \"no delivery worker answered; try again\"", status, body)
	}

	// A worker that takes the request and never answers.
	var asked atomic.Int32
	nc := h.nats.Conn(t)
	sub, err := nc.QueueSubscribe(deliverycontrol.RetryNowSubject, deliverycontrol.Queue, func(*nats.Msg) { asked.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	status, body = h.api(acme, http.MethodPost, path, map[string]any{})
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "no delivery worker answered; try again") || asked.Load() != 1 {
		t.Errorf("retry now with a silent worker = %d %s (asked %d), want 503 after asking once", status, body, asked.Load())
	}
	if took := time.Since(start); took < retryNowTimeout {
		t.Errorf("gave up after %v, before the %v the worker has", took, retryNowTimeout)
	}

	for _, c := range []struct {
		name, key, path string
		body            any
		status          int
		code            string
	}{
		{"another tenant's endpoint", other, path, nil, http.StatusNotFound, "not_found"},
		{"an unknown endpoint", acme, "/v1/endpoints/ep_01HZZZZZZZZZZZZZZZZZZZZZZZ/retry-now", nil, http.StatusNotFound, "not_found"},
		{"a disabled endpoint", acme, "/v1/endpoints/" + off.ID + "/retry-now", nil, http.StatusConflict, "endpoint_disabled"},
		{"a body that is not JSON", acme, path, "retry!", http.StatusBadRequest, ""},
	} {
		status, body := h.api(c.key, http.MethodPost, c.path, c.body)
		if status != c.status || !strings.Contains(string(body), c.code) {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the worker was asked %d times, want once (refused requests ask no worker)", n)
	}
}

// answerRetryNow subscribes, in the delivery workers' queue group, a
// stand-in worker that answers every retry-now request with queued, for
// tests of routes (such as the tenant isolation walk) that run no delivery
// service.
func answerRetryNow(t *testing.T, nc *nats.Conn, queued int) {
	t.Helper()
	data, err := json.Marshal(deliverycontrol.RetryNowReply{Queued: queued})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nc.QueueSubscribe(deliverycontrol.RetryNowSubject, deliverycontrol.Queue, func(m *nats.Msg) { _ = m.Respond(data) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}
