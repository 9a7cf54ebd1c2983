package delivery

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestMaxInFlightCapsTheWorker sends to more endpoints than the worker's
// cap at once, each answering slowly, and checks that no more than the cap
// were in flight at any moment while every delivery still arrived.
func TestMaxInFlightCapsTheWorker(t *testing.T) {
	e := newEnv(t)
	const endpoints, limit = 8, 3
	var mu sync.Mutex
	inFlight, peak := 0, 0
	slow := func(w http.ResponseWriter, _ *http.Request, _ int) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}
	var rcs []*receiver
	cfg := testConfig()
	cfg.MaxInFlight = limit
	cfg.LaneConcurrency = 1
	e.startWorker(t, cfg, workerOptions{})
	for range endpoints {
		rc := newReceiver(t, slow)
		ep := newEndpoint(t, rc.srv.URL)
		e.config.put(ep)
		rcs = append(rcs, rc)
		e.publish(context.Background(), t, newDelivery(ep))
	}
	e.waitDeliveriesEmpty(t)
	testenv.WaitFor(t, waitTimeout, func() error {
		for i, rc := range rcs {
			if n := rc.count(); n != 1 {
				return fmt.Errorf("endpoint %d got %d requests, want 1", i, n)
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if peak > limit {
		t.Errorf("%d attempts were in flight at once, want at most %d", peak, limit)
	}
	if peak < 2 {
		t.Errorf("at most %d attempt in flight: the endpoints were not served concurrently", peak)
	}
}
