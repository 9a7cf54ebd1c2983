package config

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestHealthzReportsStuckLoops: a config service whose attempt-log indexer
// has caught up stays live past the limit; a registered loop that stops
// beating with work pending turns /healthz 503 naming it, and 200 again
// once it beats.
func TestHealthzReportsStuckLoops(t *testing.T) {
	const stuckAfter = 300 * time.Millisecond
	h := startService(t, func(c *Config) { c.StuckAfter = stuckAfter })
	js := h.nats.JetStream(t)
	if _, err := streams.EnsureEvents(context.Background(), js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.EnsureAttempts(context.Background(), js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	// Wait until the indexer follows both streams and has nothing to read.
	testenv.WaitFor(t, 10*time.Second, func() error {
		for _, name := range []string{streams.Events, streams.Attempts} {
			if behind, err := h.svc.indexer.Behind(context.Background(), name); err != nil || behind {
				return fmt.Errorf("indexer behind on %s: %v, %v", name, behind, err)
			}
		}
		return nil
	})
	for deadline := time.Now().Add(3 * stuckAfter); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if status, body, _ := h.request(http.MethodGet, "/healthz", nil, nil); status != http.StatusOK {
			t.Fatalf("GET /healthz of an idle, caught-up service = %d %s, want 200", status, body)
		}
	}

	loop := h.svc.live.Loop("test loop", nil)
	defer loop.Close()
	var body []byte
	testenv.WaitFor(t, 3*stuckAfter+time.Second, func() error {
		var status int
		status, body, _ = h.request(http.MethodGet, "/healthz", nil, nil)
		if status != http.StatusServiceUnavailable {
			return fmt.Errorf("GET /healthz = %d, want 503", status)
		}
		return nil
	})
	if !strings.Contains(string(body), "test loop") || !strings.Contains(string(body), `"status":"stuck"`) {
		t.Errorf("GET /healthz body = %s, want status stuck naming the loop", body)
	}
	loop.Beat()
	if status, body, _ := h.request(http.MethodGet, "/healthz", nil, nil); status != http.StatusOK {
		t.Errorf("GET /healthz after the loop beat = %d %s, want 200", status, body)
	}
}
