package delivery

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// states waits until STATES holds want records and returns them in order.
func (e *env) states(t *testing.T, want int) []*eventv1.StateRecord {
	t.Helper()
	ctx := context.Background()
	var s jetstream.Stream
	testenv.WaitFor(t, waitTimeout, func() error {
		var err error
		if s, err = e.js.Stream(ctx, streams.States); err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if got := info.State.Msgs; got < uint64(want) {
			return fmt.Errorf("STATES holds %d records, want %d", got, want)
		}
		return nil
	})
	var out []*eventv1.StateRecord
	for seq := uint64(1); len(out) < want; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get state record %d: %v", seq, err)
		}
		r := &eventv1.StateRecord{}
		if err := proto.Unmarshal(raw.Data, r); err != nil {
			t.Fatalf("decode state record %d: %v", seq, err)
		}
		if got, want := raw.Subject, streams.StateSubject(r.GetTenantId(), streams.StateSourceDelivery); got != want {
			t.Errorf("state record %d on %q, want %q", seq, got, want)
		}
		out = append(out, r)
	}
	return out
}

// TestStateRecordsOfDecisionsWithoutAttempts: deliveries put off behind a
// failing endpoint and dropped for a disabled one are recorded in STATES
// with their reason and due time, before their ack; a resend to the failing
// endpoint is attempted at once instead of waiting behind its back-off.
func TestStateRecordsOfDecisionsWithoutAttempts(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusInternalServerError) })
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.Schedule = []time.Duration{0, time.Minute, time.Minute}
	w := e.startWorker(t, cfg, workerOptions{})
	ctx := context.Background()

	first := newDelivery(ep)
	e.publish(ctx, t, first)
	rc.next(t)
	a := e.attemptsOf(t, first.GetMessageId(), 1)[0]
	if a.GetState() != eventv1.DeliveryState_DELIVERY_STATE_RETRYING {
		t.Fatalf("first attempt left %v, want RETRYING", a.GetState())
	}
	next := a.GetNextAttemptAt().AsTime()
	e.waitDeliveriesEmpty(t)

	const putOff = 5
	held := map[string]bool{}
	for range putOff {
		d := newDelivery(ep)
		held[d.GetMessageId()] = true
		e.publish(ctx, t, d)
	}
	e.waitDeliveriesEmpty(t) // acked: in the schedule, and recorded
	recs := e.states(t, putOff)
	for _, r := range recs {
		if !held[r.GetMessageId()] || r.GetState() != eventv1.DeliveryState_DELIVERY_STATE_PUT_OFF || r.GetReason() != whyFailing ||
			len(r.GetEndpointIds()) != 1 || r.GetEndpointIds()[0] != ep.GetId() || r.GetAttempts() != 0 {
			t.Errorf("state record = %v, want PUT_OFF %q of one of the held messages to %s", r, whyFailing, ep.GetId())
		}
		if due := r.GetNextAttemptAt().AsTime(); due.Before(next.Add(-time.Second)) || due.After(next.Add(time.Second)) {
			t.Errorf("put off until %v, want the endpoint's next retry %v", due, next)
		}
	}
	if n := rc.count(); n != 1 {
		t.Errorf("endpoint got %d requests, want 1 (the others are put off)", n)
	}

	// A resend is attempted now, although the endpoint is failing.
	r := proto.Clone(first).(*eventv1.Delivery)
	r.ResendId = "rsnd_now"
	data, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if _, err := e.js.Publish(ctx, streams.DeliverySubject(ep.GetId(), 1), data, jetstream.WithMsgID("resend-now")); err != nil {
		t.Fatal(err)
	}
	rc.next(t)
	if took := time.Since(sent); took > 5*time.Second {
		t.Errorf("resend attempted after %v, want at once", took)
	}

	// A disabled endpoint's delivery is dropped with a record.
	off := newEndpoint(t, rc.srv.URL)
	off.Enabled = false
	e.config.put(off)
	testenv.WaitFor(t, waitTimeout, func() error {
		if _, ok := w.svc.view.Endpoint(off.GetId()); !ok {
			return fmt.Errorf("the worker's view lacks the disabled endpoint")
		}
		return nil
	})
	dropped := newDelivery(off)
	e.publish(ctx, t, dropped)
	e.waitDeliveriesEmpty(t)
	recs = e.states(t, putOff+1)
	last := recs[putOff]
	if last.GetMessageId() != dropped.GetMessageId() || last.GetState() != eventv1.DeliveryState_DELIVERY_STATE_DROPPED || last.GetReason() != "endpoint disabled" {
		t.Errorf("last state record = %v, want DROPPED \"endpoint disabled\" of %s", last, dropped.GetMessageId())
	}
	if n := rc.count(); n != 2 {
		t.Errorf("endpoint got %d requests, want 2 (the first and the resend)", n)
	}
}
