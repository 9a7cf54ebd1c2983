package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestLivenessOfThePullLoops checks the pull loops' pending test on real
// partition consumers — deliveries not yet pulled are pending for a worker
// while nobody holds the pin — and that a running worker whose loops and
// scheduler are idle with nothing pending stays live past the limit.
func TestLivenessOfThePullLoops(t *testing.T) {
	const stuckAfter = 300 * time.Millisecond
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { _, _ = w.Write([]byte("ok")) })
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()

	// A worker built but not running: its partition has deliveries it has
	// not pulled, and no pin.
	idle, err := New(context.Background(), cfg, Deps{NATS: e.nats.Conn(t), Redis: e.redis.Client(t), Config: e.client,
		Logger: slog.New(slog.DiscardHandler), TracerProvider: noop.NewTracerProvider()})
	if err != nil {
		t.Fatal(err)
	}
	e.publish(context.Background(), t, newDelivery(ep))
	e.publish(context.Background(), t, newDelivery(ep))
	if pending, err := idle.balancer.newPartition(0).deliveriesPending(context.Background()); err != nil || !pending {
		t.Fatalf("deliveriesPending with 2 deliveries not pulled and no pin = %v, %v; want true", pending, err)
	}

	live := health.NewLiveness(stuckAfter)
	w := e.startWorker(t, cfg, workerOptions{live: live})
	e.attempts(t, 2)
	e.waitDeliveriesEmpty(t)
	if pending, err := w.svc.balancer.tenure(0).deliveriesPending(context.Background()); err != nil || pending {
		t.Fatalf("deliveriesPending once both are delivered = %v, %v; want false", pending, err)
	}
	// Idle with nothing pending, for three times the limit: live.
	for deadline := time.Now().Add(3 * stuckAfter); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := live.Check(context.Background()); err != nil {
			t.Fatalf("Check of an idle worker with nothing pending = %v, want nil", err)
		}
	}
	if got := rc.count(); got != 2 {
		t.Errorf("receiver got %d requests, want 2", got)
	}
}

// TestLivenessIgnoresAPartitionPinnedElsewhere: a worker dies without
// giving up its pin and deliveries pile up in its partition. Until the pin
// moves, they are not the other worker's to pull, so that worker — idle
// far past the limit — stays live; once the pin's TTL has passed it takes
// the partition and delivers them.
func TestLivenessIgnoresAPartitionPinnedElsewhere(t *testing.T) {
	const stuckAfter = 300 * time.Millisecond
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { _, _ = w.Write([]byte("ok")) })
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()

	first := e.startWorker(t, cfg, workerOptions{})
	e.publish(context.Background(), t, newDelivery(ep))
	e.attempts(t, 1)
	first.nc.Close() // dies holding the pin

	live := health.NewLiveness(stuckAfter)
	second := e.startWorker(t, cfg, workerOptions{live: live})
	e.publish(context.Background(), t, newDelivery(ep))
	e.publish(context.Background(), t, newDelivery(ep))
	c := second.svc.balancer.newPartition(0).consumer
	testenv.WaitFor(t, 5*time.Second, func() error {
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 2 || len(info.PriorityGroups) != 1 || info.PriorityGroups[0].PinnedClientID == "" {
			return fmt.Errorf("partition has %d deliveries pending, priority groups %+v; want 2, pinned (to the dead worker)", info.NumPending, info.PriorityGroups)
		}
		return nil
	})
	if pending, err := second.svc.balancer.newPartition(0).deliveriesPending(context.Background()); err != nil || pending {
		t.Fatalf("deliveriesPending of the worker without the pin = %v, %v; want false", pending, err)
	}
	for deadline := time.Now().Add(3 * stuckAfter); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := live.Check(context.Background()); err != nil {
			t.Fatalf("Check of the worker whose partition is pinned elsewhere = %v, want nil", err)
		}
	}

	// The dead worker's lease and pin lapse; the second worker takes the partition.
	testenv.WaitFor(t, time.Minute, func() error {
		if got := rc.count(); got != 3 {
			return fmt.Errorf("receiver got %d requests, want 3", got)
		}
		return nil
	})
	e.waitDeliveriesEmpty(t)
	if err := live.Check(context.Background()); err != nil {
		t.Errorf("Check once the partition moved and drained = %v, want nil", err)
	}
}
