package delivery

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// TestNoResendAfterCrashBeforeAck stops a worker between the 2xx (recorded
// in Redis and ATTEMPTS) and the JetStream ack, as a crash would. The next
// worker gets the redelivered message, finds it completed, and acks it
// without calling the endpoint again.
func TestNoResendAfterCrashBeforeAck(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.AckWait = time.Second // the crashed worker's message comes back quickly

	crashed := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	crashing := cfg
	crashing.Hooks.AfterSuccess = func(context.Context, string, string) {
		once.Do(func() { close(crashed) })
		<-release
	}
	first := e.startWorker(t, crashing, workerOptions{})
	t.Cleanup(func() { close(release) }) // runs before first's own cleanup stops it
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)

	waitClosed(t, crashed, "the first worker's success hook")
	// Crash: the worker stops pulling and loses its NATS connection, so
	// neither its ack nor InProgress can reach the server.
	first.cancel()
	first.nc.Close()
	if got := rc.count(); got != 1 {
		t.Fatalf("receiver got %d requests before the crash, want 1", got)
	}
	// A dead worker's pin moves after the pinned TTL; unpin now instead.
	s, err := e.js.Stream(context.Background(), streams.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinConsumer(context.Background(), streams.PartitionConsumer(0), streams.DeliveryGroup); err != nil {
		t.Fatalf("unpin: %v", err)
	}

	e.startWorker(t, cfg, workerOptions{})
	e.waitDeliveriesEmpty(t)
	if got := rc.count(); got != 1 {
		t.Errorf("receiver got %d requests in all, want 1", got)
	}
	if got := e.attemptCount(t); got != 1 {
		t.Errorf("ATTEMPTS holds %d records, want the first worker's 1", got)
	}
}
