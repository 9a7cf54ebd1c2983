package delivery

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// deliveriesHeld is how many messages DELIVERIES holds (acked ones leave
// the work queue).
func (e *env) deliveriesHeld(t *testing.T) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), streams.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestAttemptRecordStoredBeforeAck takes ATTEMPTS away (every publish to it
// then fails, as during a leader election) while a delivery succeeds and
// another fails: neither is acked while its record cannot be stored, and
// once the stream is back each record is stored exactly once and then the
// delivery is acked (the failed one moved to the schedule and retried).
func TestAttemptRecordStoredBeforeAck(t *testing.T) {
	e := newEnv(t)
	okRC := newReceiver(t, nil)
	badRC := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	okEP, badEP := newEndpoint(t, okRC.srv.URL), newEndpoint(t, badRC.srv.URL)
	e.config.put(okEP)
	e.config.put(badEP)
	e.startWorker(t, testConfig(), workerOptions{})
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, streams.Attempts); err != nil {
		t.Fatal(err)
	}
	e.publish(ctx, t, newDelivery(okEP))
	e.publish(ctx, t, newDelivery(badEP))
	testenv.WaitFor(t, waitTimeout, func() error {
		if okRC.count() != 1 || badRC.count() != 1 {
			return fmt.Errorf("receivers got %d and %d requests, want 1 and 1", okRC.count(), badRC.count())
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // a few record tries fail meanwhile
	if got := e.deliveriesHeld(t); got != 2 {
		t.Fatalf("DELIVERIES holds %d messages while their records cannot be stored, want 2 (unacked)", got)
	}
	if _, err := streams.EnsureAttempts(ctx, e.js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	e.waitDeliveriesEmpty(t)
	testenv.WaitFor(t, waitTimeout, func() error {
		if got := badRC.count(); got != 2 {
			return fmt.Errorf("failing endpoint got %d requests, want 2 (the retry succeeds)", got)
		}
		return nil
	})
	e.waitDeliveriesEmpty(t)
	as := e.attempts(t, 3)
	states := map[eventv1.DeliveryState]int{}
	for _, a := range as {
		states[a.GetState()]++
	}
	if states[eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED] != 2 || states[eventv1.DeliveryState_DELIVERY_STATE_RETRYING] != 1 {
		t.Errorf("attempt states = %v, want 2 succeeded and 1 retrying", states)
	}
	if n := e.attemptCount(t); n != 3 {
		t.Errorf("ATTEMPTS holds %d records, want 3", n)
	}
}

// TestAttemptRecordRestoredByTheNextWorker lets a worker succeed while
// ATTEMPTS is away and then die (its connection closed): the delivery is
// left unacked, and the next worker, finding the completion record, does
// not send it again but stores the attempt the record names.
func TestAttemptRecordRestoredByTheNextWorker(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.AckWait = time.Second // the dead worker's delivery comes back quickly
	first := e.startWorker(t, cfg, workerOptions{})
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, streams.Attempts); err != nil {
		t.Fatal(err)
	}
	d := newDelivery(ep)
	e.publish(ctx, t, d)
	rdb := e.redis.Client(t)
	var record string
	testenv.WaitFor(t, waitTimeout, func() error {
		var err error
		record, err = rdb.Get(ctx, deliveryDoneKey(d)).Result()
		return err
	})
	first.cancel()
	first.nc.Close()
	if _, err := streams.EnsureAttempts(ctx, e.js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	if got := e.deliveriesHeld(t); got != 1 {
		t.Fatalf("DELIVERIES holds %d messages after the worker died without its record, want 1", got)
	}
	s, err := e.js.Stream(ctx, streams.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinConsumer(ctx, streams.PartitionConsumer(0), streams.DeliveryGroup); err != nil {
		t.Fatalf("unpin: %v", err)
	}
	e.startWorker(t, cfg, workerOptions{})
	e.waitDeliveriesEmpty(t)
	if got := rc.count(); got != 1 {
		t.Errorf("receiver got %d requests, want 1", got)
	}
	as := e.attempts(t, 1)
	if want := parseCompletion(record).attemptID; as[0].GetId() != want || as[0].GetState() != eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED {
		t.Errorf("stored attempt %s in state %v, want %s succeeded (the completion record %q)", as[0].GetId(), as[0].GetState(), want, record)
	}
	if n := e.attemptCount(t); n != 1 {
		t.Errorf("ATTEMPTS holds %d records, want 1", n)
	}
}
