package delivery

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestLanesExpireTakesTheOldestQueued checks that expire takes exactly the
// jobs queued before the cutoff, oldest first, and leaves running jobs and
// newer queued ones alone.
func TestLanesExpireTakesTheOldestQueued(t *testing.T) {
	r := newLaneRecorder()
	ls := newLanes(1, 10, r.run)
	defer func() {
		close(r.release)
		ls.stop()
		ls.wait()
	}()
	ctx := context.Background()
	ls.dispatch(ctx, "ep_a", &job{seq: 1}) // runs, blocked
	receive(t, r.started)
	ls.dispatch(ctx, "ep_a", &job{seq: 2})
	ls.dispatch(ctx, "ep_a", &job{seq: 3})
	cutoff := time.Now()
	time.Sleep(time.Millisecond) // the next one is queued after the cutoff
	ls.dispatch(ctx, "ep_a", &job{seq: 4})

	var got []uint64
	for _, e := range ls.expire(cutoff) {
		if e.key != "ep_a" {
			t.Errorf("expired job of %q, want ep_a", e.key)
		}
		got = append(got, e.j.seq)
	}
	if want := []uint64{2, 3}; !slices.Equal(got, want) {
		t.Errorf("expired %v, want %v", got, want)
	}
	if running, queued, _ := laneState(ls, "ep_a"); running != 1 || queued != 1 {
		t.Errorf("lane after expire: %d running, %d queued; want 1 and 1", running, queued)
	}
	if left := ls.expire(cutoff); len(left) != 0 {
		t.Errorf("second expire took %d jobs, want none", len(left))
	}
}

// TestQueuedDeliveriesOfAHangingEndpointLeaveTheStream sends five
// deliveries to an endpoint that holds its one slot (LaneConcurrency 1). The
// four waiting behind it are put off to the schedule once they have waited
// LaneMaxWait — acked, so the stream no longer holds them — and every one is
// delivered, once, when the endpoint answers again.
func TestQueuedDeliveriesOfAHangingEndpointLeaveTheStream(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		<-release
		_, _ = w.Write([]byte("ok"))
	})
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.LaneConcurrency, cfg.LaneQueue, cfg.MaxInFlight = 1, 10, 1
	cfg.LaneMaxWait = 200 * time.Millisecond
	cfg.DeferDelay = 100 * time.Millisecond
	e.startWorker(t, cfg, workerOptions{})
	var ids []string
	for range 5 {
		d := newDelivery(ep)
		ids = append(ids, d.GetMessageId())
		e.publish(context.Background(), t, d)
	}
	c, err := e.js.Consumer(context.Background(), streams.Deliveries, streams.PartitionConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	// One in flight stays un-acked; the four queued leave for the schedule.
	testenv.WaitFor(t, waitTimeout, func() error {
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending > 1 || info.NumPending > 0 {
			return fmt.Errorf("%d deliveries un-acked and %d pending, want the one in flight only", info.NumAckPending, info.NumPending)
		}
		return nil
	})
	close(release)
	testenv.WaitFor(t, waitTimeout, func() error {
		got := map[string]int{}
		for _, a := range e.allAttempts(t) {
			if a.GetOutcome().String() == "OUTCOME_SUCCESS" {
				got[a.GetMessageId()]++
			}
		}
		for _, id := range ids {
			if got[id] != 1 {
				return fmt.Errorf("%s delivered %d times, want 1", id, got[id])
			}
		}
		return nil
	})
	e.waitSettled(t, 1)
}
