package config

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestStoreOutageAnswers503 stops NATS under a running service: requests get
// a 503 with Retry-After, and the service recovers when NATS is back.
func TestStoreOutageAnswers503(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	h.nats.Stop()
	start := time.Now()
	status, data, hdr := h.request(http.MethodGet, "/v1/endpoints", nil, map[string]string{"X-Api-Key": key})
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("answered after %v, want within the 5s store timeout", d)
	}
	wantError(t, status, data, http.StatusServiceUnavailable, "unavailable")
	if hdr.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	h.nats.Start()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if status, data := h.api(key, http.MethodGet, "/v1/endpoints", nil); status != http.StatusOK {
			return fmt.Errorf("after NATS is back: status %d: %s", status, data)
		}
		return nil
	})
	// The KV watchers resumed at once: a write is applied to this replica's
	// state without waiting out applyTimeout, and shows in its reads.
	start = time.Now()
	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/after-outage"})
	if d := time.Since(start); d > applyTimeout/2 {
		t.Errorf("create after the outage took %v: the KV watchers did not resume", d)
	}
	status, data = h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	if status != http.StatusOK {
		t.Errorf("endpoint made after the outage: status %d: %s, want 200", status, data)
	}
}
