package delivery

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// TestSlowEndpointDoesNotBlockAnother fills a slow endpoint's lane beyond its
// slots and queue, then checks that another endpoint of the same partition is
// served while the slow one is still blocked.
func TestSlowEndpointDoesNotBlockAnother(t *testing.T) {
	e := newEnv(t)
	unblock := make(chan struct{})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-unblock:
		case <-r.Context().Done():
		}
	})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release) // before the receiver's Close, should the test stop early
	fast := newReceiver(t, nil)
	slowEP, fastEP := newEndpoint(t, slow.srv.URL), newEndpoint(t, fast.srv.URL)
	slowEP.TimeoutMs = 30000
	if streams.Partition(slowEP.Id, 1) != streams.Partition(fastEP.Id, 1) {
		t.Fatal("endpoints in different partitions")
	}
	e.config.put(slowEP)
	e.config.put(fastEP)
	cfg := testConfig()
	cfg.LaneConcurrency = 2
	cfg.LaneQueue = 2
	e.startWorker(t, cfg, workerOptions{})

	const slowN, fastN = 8, 4 // 2 in flight, 2 queued, 4 put off to the schedule
	for i := 0; i < slowN; i++ {
		e.publish(context.Background(), t, newDelivery(slowEP))
	}
	// The slow lane is full before the fast deliveries are published.
	for i := 0; i < cfg.LaneConcurrency; i++ {
		slow.next(t)
	}
	for i := 0; i < fastN; i++ {
		e.publish(context.Background(), t, newDelivery(fastEP))
	}
	for i := 0; i < fastN; i++ {
		fast.next(t)
	}
	if got := slow.count(); got != cfg.LaneConcurrency {
		t.Errorf("slow endpoint has %d requests while blocked, want its concurrency cap %d", got, cfg.LaneConcurrency)
	}

	release()
	for i := cfg.LaneConcurrency; i < slowN; i++ {
		slow.next(t)
	}
	e.waitDeliveriesEmpty(t)
	if got := slow.count(); got != slowN {
		t.Errorf("slow endpoint got %d requests, want %d", got, slowN)
	}
}
