package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// addEndpoints pushes a tenant with n endpoints of empty filter.
func addEndpoints(h *harness, n int) (*configv1.Tenant, []*configv1.Endpoint) {
	h.t.Helper()
	tenant := newTenant()
	changes := []*configv1.Change{upsertTenant(tenant)}
	eps := make([]*configv1.Endpoint, n)
	for i := range eps {
		eps[i] = newEndpoint(tenant.GetId())
		changes = append(changes, upsertEndpoint(eps[i]))
	}
	h.config.push(changes...)
	return tenant, eps
}

func TestRedeliveredEventStoresEachDeliveryOnce(t *testing.T) {
	h := newHarness(t, false)
	tenant, eps := addEndpoints(h, 3)
	h.start(testConfig(), nil)

	ev := newEvent(tenant.GetId(), "job.completed")
	h.waitSettled(h.publishEvent(ev, nil))
	// The same event handed out again, as after a crash before its ack.
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	seq := h.publishRaw(streams.EventSubject(tenant.GetId(), "job.completed"), ev.GetMessageId()+"-again", data, nil)
	h.waitSettled(seq)

	got := h.deliveriesOf(ev.GetMessageId()) // fails the test on a delivery stored twice
	if len(got) != len(eps) {
		t.Errorf("stored %d deliveries, want %d", len(got), len(eps))
	}
}

func TestFailedPublishRedoesTheFanOut(t *testing.T) {
	h := newHarness(t, false)
	tenant, eps := addEndpoints(h, 5)
	cfg := testConfig()
	svc := h.newService(cfg, nil)

	// Let DELIVERIES take only 2 messages: the fan-out is partly stored.
	ctx := context.Background()
	deliveries, err := h.js.Stream(ctx, streams.Deliveries)
	if err != nil {
		t.Fatal(err)
	}
	limited := deliveries.CachedInfo().Config
	limited.MaxMsgs, limited.Discard = 2, jetstream.DiscardNew
	if _, err := h.js.UpdateStream(ctx, limited); err != nil {
		t.Fatalf("limit DELIVERIES: %v", err)
	}
	h.run(svc)

	ev := newEvent(tenant.GetId(), "job.completed")
	seq := h.publishEvent(ev, nil)
	testenv.WaitFor(t, settleTimeout, func() error {
		info, err := h.consumerInfo()
		if err != nil {
			return err
		}
		if info.NumRedelivered == 0 {
			return fmt.Errorf("event not redelivered yet")
		}
		return nil
	})
	info, err := h.consumerInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream >= seq {
		t.Fatalf("event acked with a partly stored fan-out (ack floor %d, event %d)", info.AckFloor.Stream, seq)
	}
	if got := len(h.deliveriesOf(ev.GetMessageId())); got != 2 {
		t.Fatalf("stored %d deliveries while limited, want 2", got)
	}

	if _, err := streams.EnsureDeliveries(ctx, h.js, cfg.Streams, DefaultDeliveryAckWait); err != nil {
		t.Fatalf("lift the DELIVERIES limit: %v", err)
	}
	h.waitSettled(seq)
	got := h.deliveriesOf(ev.GetMessageId()) // fails the test on a delivery stored twice
	for _, ep := range eps {
		if _, ok := got[ep.GetId()]; !ok {
			t.Errorf("no delivery to %s", ep.GetId())
		}
	}
	if len(got) != len(eps) {
		t.Errorf("stored %d deliveries, want %d", len(got), len(eps))
	}
	// The two stored by the first fan-out are fresh; those stored by the
	// redo are marked, so delivery checks them against completed ones.
	redone := 0
	for _, d := range got {
		if d.header.Get(streams.RedoHeader) != "" {
			redone++
		}
	}
	if redone != len(eps)-2 {
		t.Errorf("%d deliveries marked as a redo, want the %d stored by the redo", redone, len(eps)-2)
	}
}

func TestRestartMidFanOutStoresEachDeliveryOnce(t *testing.T) {
	const endpoints, events = 1000, 20
	h := newHarness(t, false)
	tenant, _ := addEndpoints(h, endpoints)
	cfg := testConfig()
	cfg.Concurrency = 1
	cfg.ShutdownTimeout = time.Millisecond // hand in-flight fan-outs back at once
	first := h.newService(cfg, nil)
	stopFirst := h.run(first)
	h.waitReady(first)

	var last uint64
	for range events {
		last = h.publishEvent(newEvent(tenant.GetId(), "job.completed"), nil)
	}
	testenv.WaitFor(t, settleTimeout, func() error {
		if n := h.deliveryState().Msgs; n == 0 {
			return fmt.Errorf("no delivery stored yet")
		}
		return nil
	})
	stopFirst()
	info, err := h.consumerInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream >= last {
		t.Fatalf("first replica finished all %d events before it was stopped; the test needs a slower fan-out", events)
	}
	t.Logf("first replica stopped with %d of %d deliveries stored", h.deliveryState().Msgs, endpoints*events)

	h.start(cfg, nil)
	// 20,000 deliveries at Concurrency 1 take seconds on an idle machine
	// and several times as long on a loaded one (CI has 2 cores): wait
	// generously for the consumer to settle, then check it as usual.
	testenv.WaitFor(t, 2*time.Minute, func() error {
		info, err := h.consumerInfo()
		if err != nil {
			return err
		}
		if info.AckFloor.Stream < last || info.NumAckPending > 0 {
			return fmt.Errorf("ack floor at stream sequence %d with %d pending acks, want %d and 0", info.AckFloor.Stream, info.NumAckPending, last)
		}
		return nil
	})
	h.waitSettled(last)
	state := h.deliveryState()
	if state.Msgs != endpoints*events {
		t.Errorf("stored %d deliveries, want %d", state.Msgs, endpoints*events)
	}
	if len(state.Subjects) != endpoints {
		t.Errorf("deliveries on %d subjects, want %d", len(state.Subjects), endpoints)
	}
	for subject, n := range state.Subjects {
		if n != events {
			t.Errorf("%s holds %d deliveries, want %d", subject, n, events)
		}
	}
}

// deliveryState returns the DELIVERIES stream state with its per-subject counts.
func (h *harness) deliveryState() jetstream.StreamState {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), streams.Deliveries)
	if err != nil {
		h.t.Fatalf("look up stream: %v", err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(streams.DeliveriesPrefix+".>"))
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	return info.State
}

func TestPoisonEventIsTerminated(t *testing.T) {
	h := newHarness(t, false)
	tenant, eps := addEndpoints(h, 1)
	h.start(testConfig(), nil)
	advisories, err := h.nats.Conn(t).SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + streams.Events + "." + streams.FanoutConsumer)
	if err != nil {
		t.Fatal(err)
	}
	noID, err := proto.Marshal(&eventv1.Event{TenantId: tenant.GetId(), EventType: "job.completed", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"not protobuf", []byte{0xff, 0xff, 0xff, 0xff}},
		{"empty body", nil},
		{"no message id", noID},
	}
	subject := streams.EventSubject(tenant.GetId(), "job.completed")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := h.publishRaw(subject, fmt.Sprintf("poison-%d", i), tt.data, nil)
			var adv struct {
				StreamSeq uint64 `json:"stream_seq"`
				Reason    string `json:"reason"`
			}
			for adv.StreamSeq != seq {
				m, err := advisories.NextMsg(settleTimeout)
				if err != nil {
					t.Fatalf("no termination advisory for stream sequence %d: %v", seq, err)
				}
				if err := json.Unmarshal(m.Data, &adv); err != nil {
					t.Fatalf("decode advisory %s: %v", m.Data, err)
				}
			}
			if adv.Reason != poisonReason {
				t.Errorf("termination reason = %q, want %q", adv.Reason, poisonReason)
			}
			h.checkNoRedelivery(h.waitSettled(seq))
		})
	}

	ev := newEvent(tenant.GetId(), "job.completed")
	h.waitSettled(h.publishEvent(ev, nil))
	if _, ok := h.deliveriesOf(ev.GetMessageId())[eps[0].GetId()]; !ok {
		t.Error("no delivery of the valid event published after the poison ones")
	}
}
