package delivery

import (
	"errors"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestPartitionsMoveWhenTheirLeasesAreGivenUp runs workers whose lease
// TTL is so long that their renewal ticks (every TTL/5, two minutes) never
// come during the test: a partition can move only on the leases watch,
// when its previous holder gives its lease up. Under a steady load over 8
// partitions, a second worker joins (the first releases 4) and then stops
// gracefully (it gives its 4 up): each time the partitions are balanced
// within 10 s, and every delivery arrives exactly once with one attempt
// record each. (Before the watch, the joining worker took the released
// partitions only at its next tick, and the remaining one those the
// leaver gave up.)
func TestPartitionsMoveWhenTheirLeasesAreGivenUp(t *testing.T) {
	const partitions = 8
	e := newEnv(t)
	ps := newPulls(t)
	tl := newTally(t)
	eps := spreadEndpoints(t, e, tl, partitions, 2)
	cfg := partitionConfig(partitions)
	cfg.LeaseTTL = 10 * time.Minute
	a := e.startNamed(t, cfg, ps, "worker-a")
	waitBalanced(t, []named{a}, partitions, time.Now())
	l := e.startSteadyLoad(t, eps, partitions, 5*time.Millisecond)

	joined := time.Now()
	b := e.startNamed(t, cfg, ps, "worker-b")
	took := waitBalanced(t, []named{a, b}, partitions, joined)
	t.Logf("2 workers balanced %v after the second started", took.Round(time.Millisecond))
	testenv.WaitFor(t, waitTimeout, func() error {
		if tl.shares()["worker-b"] == 0 {
			return errors.New("worker-b has delivered nothing since it took its partitions")
		}
		return nil
	})

	left := time.Now()
	b.w.stop(t)
	took = waitBalanced(t, []named{a}, partitions, left)
	t.Logf("worker-a holds every partition %v after worker-b stopped", took.Round(time.Millisecond))
	mark := tl.shares()["worker-a"]
	testenv.WaitFor(t, waitTimeout, func() error {
		if tl.shares()["worker-a"] <= mark {
			return errors.New("worker-a has delivered nothing since it took worker-b's partitions")
		}
		return nil
	})

	l.stop()
	if l.err != nil {
		t.Fatalf("load: %v", l.err)
	}
	e.waitAllArrived(t, l, tl, waitTimeout)
	e.waitDeliveriesEmpty(t)
	published, lost, dups, unexpected := l.accounting(tl)
	t.Logf("%d deliveries published, %d lost, %d duplicated, %d unexpected; shares %v", published, lost, len(dups), len(unexpected), tl.shares())
	if lost != 0 || len(dups) != 0 || len(unexpected) != 0 {
		t.Errorf("%d lost, %d duplicated (%v), %d unexpected; want 0 each", lost, len(dups), dups, len(unexpected))
	}
	if got := e.attemptCount(t); got != uint64(published) {
		t.Errorf("ATTEMPTS holds %d records, want one per delivery: %d", got, published)
	}
}
