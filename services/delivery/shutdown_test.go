package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
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
		if waiting := waitingIn(first.svc, 0); waiting != 1 {
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

// TestShutdownHandsBackQueuedDeliveriesAtOnce stops a worker whose endpoint
// is slow, with one delivery in flight and several waiting in the lane: the
// waiting ones go to the next worker within seconds, not after the ack wait,
// while the one in flight is finished by the stopping worker.
func TestShutdownHandsBackQueuedDeliveriesAtOnce(t *testing.T) {
	e := newEnv(t)
	firstArrived := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	defer releaseAll() // before the workers' clean-ups, which wait for it
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			firstArrived <- struct{}{}
			<-release
		}
		_, _ = w.Write([]byte("ok"))
	})
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.AckWait = 30 * time.Second
	cfg.LaneConcurrency = 1
	cfg.LaneMaxWait = time.Minute // stay in the lane, not put off
	cfg.ShutdownGrace = 20 * time.Second
	first := e.startWorker(t, cfg, workerOptions{})
	const queued = 6
	for range queued + 1 {
		e.publish(context.Background(), t, newDelivery(ep))
	}
	<-firstArrived
	testenv.WaitFor(t, waitTimeout, func() error {
		if waiting := waitingIn(first.svc, 0); waiting != queued {
			return fmt.Errorf("%d deliveries waiting in the lane, want %d", waiting, queued)
		}
		return nil
	})
	e.startWorker(t, cfg, workerOptions{})

	first.cancel()
	start := time.Now()

	testenv.WaitFor(t, 10*time.Second, func() error {
		if got := rc.count(); got != 1+queued {
			return fmt.Errorf("receiver got %d requests, want %d", got, 1+queued)
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("%d queued deliveries delivered by the next worker %v after the stop", queued, took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("the next worker delivered the queued deliveries %v after the stop, want within 3 s (the ack wait is %v)", took, cfg.AckWait)
	}
	releaseAll()
	first.stop(t)
	e.waitDeliveriesEmpty(t)
	if got := rc.count(); got != 1+queued {
		t.Errorf("receiver got %d requests in all, want %d: each delivery once", got, 1+queued)
	}
}

// waitingIn returns how many deliveries wait in the lanes of the worker's
// tenure of partition i (0 when it holds none).
func waitingIn(s *Service, i int) int {
	p := s.balancer.tenure(i)
	if p == nil {
		return 0
	}
	_, waiting := p.lanes.stats()
	return waiting
}

// TestShutdownCutsHangingAttemptShortAsTimeout stops a worker while an
// attempt hangs past the shutdown grace: the attempt is cut short when the
// grace ends, recorded as a timeout and scheduled for retry, and the next
// worker delivers it once the endpoint answers.
func TestShutdownCutsHangingAttemptShortAsTimeout(t *testing.T) {
	e := newEnv(t)
	arrived := make(chan struct{}, 1)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			arrived <- struct{}{}
			<-r.Context().Done() // hangs until the worker gives up
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.ShutdownGrace = 500 * time.Millisecond
	cfg.DefaultTimeout = MaxTimeout // the attempt's own timeout is far off
	first := e.startWorker(t, cfg, workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)
	<-arrived

	first.cancel()
	stopped := time.Now()
	first.stop(t)
	took := time.Since(stopped)
	t.Logf("worker stopped %v after the cancellation (grace %v)", took.Round(time.Millisecond), cfg.ShutdownGrace)
	if took < cfg.ShutdownGrace || took > cfg.ShutdownGrace+settleAfterAbort {
		t.Errorf("worker stopped %v after the cancellation, want between the grace %v and %v", took, cfg.ShutdownGrace, cfg.ShutdownGrace+settleAfterAbort)
	}
	first1 := e.attempts(t, 1)[0]
	if got, want := first1.GetOutcome(), eventv1.Outcome_OUTCOME_TIMEOUT; got != want {
		t.Errorf("cut-short attempt outcome = %v, want %v", got, want)
	}
	if got, want := first1.GetState(), eventv1.DeliveryState_DELIVERY_STATE_RETRYING; got != want {
		t.Errorf("cut-short attempt state = %v, want %v", got, want)
	}
	if !strings.Contains(first1.GetError(), "grace") {
		t.Errorf("cut-short attempt error = %q, want it to say the grace ended", first1.GetError())
	}

	e.startWorker(t, cfg, workerOptions{})
	got := e.attempts(t, 2)
	e.waitDeliveriesEmpty(t)
	if got[1].GetMessageId() != d.GetMessageId() || got[1].GetAttempt() != 2 || got[1].GetOutcome() != eventv1.Outcome_OUTCOME_SUCCESS {
		t.Errorf("second attempt = message %s attempt %d %v, want message %s attempt 2 success", got[1].GetMessageId(), got[1].GetAttempt(), got[1].GetOutcome(), d.GetMessageId())
	}
	if n := rc.count(); n != 2 {
		t.Errorf("receiver got %d requests, want 2: the cut-short one and the retry", n)
	}
	if n := e.attemptCount(t); n != 2 {
		t.Errorf("ATTEMPTS holds %d records, want 2", n)
	}
}
