package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestGracefulShutdown stops a worker while one delivery is in flight and
// another waits in its lane: the one in flight finishes and is acked, the
// waiting one stays in the stream and goes to the next worker.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	arrived := make(chan struct{}, 10)
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		arrived <- struct{}{}
		if n == 1 {
			<-release
		}
		_, _ = w.Write([]byte("ok"))
	})
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.AckWait = time.Second
	cfg.LaneConcurrency = 1
	first := e.startWorker(t, cfg, workerOptions{})
	e.publish(context.Background(), t, newDelivery(ep))
	e.publish(context.Background(), t, newDelivery(ep))
	<-arrived
	testenv.WaitFor(t, waitTimeout, func() error {
		if _, waiting := first.svc.partitions[0].lanes.stats(); waiting != 1 {
			return fmt.Errorf("%d deliveries waiting in the lane, want 1", waiting)
		}
		return nil
	})

	first.cancel()
	testenv.WaitFor(t, waitTimeout, func() error {
		if first.svc.Ready() {
			return errors.New("still ready after cancellation")
		}
		return nil
	})
	releaseAll()
	first.stop(t)
	if got := rc.count(); got != 1 {
		t.Errorf("receiver got %d requests from the stopped worker, want 1 (the one in flight)", got)
	}
	if got := e.attemptCount(t); got != 1 {
		t.Errorf("ATTEMPTS holds %d records, want 1", got)
	}
	s, err := e.js.Stream(context.Background(), streams.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("DELIVERIES holds %d messages after shutdown, want the 1 that never started", info.State.Msgs)
	}

	e.startWorker(t, cfg, workerOptions{})
	e.waitDeliveriesEmpty(t)
	if got := rc.count(); got != 2 {
		t.Errorf("receiver got %d requests in all, want 2", got)
	}
}
