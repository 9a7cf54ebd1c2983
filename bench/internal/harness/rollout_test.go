package harness

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/bench/internal/records"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestAttemptsMissing counts, against a real ATTEMPTS stream, the 2xx
// receipts that have no succeeded attempt record.
func TestAttemptsMissing(t *testing.T) {
	n := testenv.StartNATS(t)
	js := n.JetStream(t)
	ctx := context.Background()
	if _, err := streams.EnsureAttempts(ctx, js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	store := func(i int, msg, ep string, state eventv1.DeliveryState) {
		t.Helper()
		a := &eventv1.Attempt{Id: fmt.Sprintf("att_%d", i), MessageId: msg, TenantId: "ten", EndpointId: ep, State: state}
		data, err := proto.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, streams.AttemptSubject("ten", ep), data, jetstream.WithMsgID(a.Id)); err != nil {
			t.Fatal(err)
		}
	}
	// msg_1 to two endpoints, both recorded; msg_2 failed once, then
	// succeeded; msg_3 only failed records; msg_4 none at all.
	store(1, "msg_1", "ep_a", eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
	store(2, "msg_1", "ep_b", eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
	store(3, "msg_2", "ep_a", eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
	store(4, "msg_2", "ep_a", eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
	store(5, "msg_3", "ep_a", eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
	receipts := []records.Receipt{
		{ID: "msg_1", Endpoint: "a", Status: 200},
		{ID: "msg_1", Endpoint: "b", Status: 204},
		{ID: "msg_2", Endpoint: "a", Status: 500},
		{ID: "msg_2", Endpoint: "a", Status: 200},
		{ID: "msg_3", Endpoint: "a", Status: 200},
		{ID: "msg_4", Endpoint: "a", Status: 200},
		{ID: "msg_5", Endpoint: "a", Status: 503}, // never succeeded: nothing to miss
	}
	missing, stored, err := attemptsMissing(ctx, n.URL(), receipts)
	if err != nil {
		t.Fatal(err)
	}
	if missing != 2 || stored != 5 {
		t.Errorf("attemptsMissing = %d missing of %d records read, want 2 (msg_3, msg_4) of 5", missing, stored)
	}
}

// TestRolloutPhases splits deliveries by the phase their event was
// accepted in and measures each phase on its own.
func TestRolloutPhases(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) int64 { return t0.Add(time.Duration(s * float64(time.Second))).UnixNano() }
	marks := []rolloutMark{{"none", t0}, {"delivery", t0.Add(10 * time.Second)}, {"ingest", t0.Add(20 * time.Second)}}
	subs := map[string][]string{"ten": {"a", "b"}}
	acks := []records.Ack{
		{ID: "m1", Tenant: "ten", At: at(1)},    // phase 0: 100 ms and 200 ms
		{ID: "m2", Tenant: "ten", At: at(11)},   // phase 1: 5 s, and b lost
		{ID: "m3", Tenant: "ten", At: at(21.5)}, // phase 2: 50 ms twice (b's duplicate later)
	}
	got := []records.Receipt{
		{ID: "m1", Endpoint: "a", At: at(1.1), Status: 200},
		{ID: "m1", Endpoint: "b", At: at(1.2), Status: 200},
		{ID: "m2", Endpoint: "a", At: at(12), Status: 500},
		{ID: "m2", Endpoint: "a", At: at(16), Status: 200},
		{ID: "m3", Endpoint: "b", At: at(29), Status: 200},
		{ID: "m3", Endpoint: "a", At: at(21.55), Status: 200},
		{ID: "m3", Endpoint: "b", At: at(21.55), Status: 200},
	}
	ph := rolloutPhases(marks, t0.Add(30*time.Second), acks, subs, got)
	want := []rolloutPhase{
		{Process: "none", FromS: 0, ToS: 10, Deliveries: 2, P99Ms: 200, MaxMs: 200},
		{Process: "delivery", FromS: 10, ToS: 20, Deliveries: 1, P99Ms: 5000, MaxMs: 5000, Over1s: 1},
		{Process: "ingest", FromS: 20, ToS: 30, Deliveries: 2, P99Ms: 50, MaxMs: 50},
	}
	if !slices.Equal(ph, want) {
		t.Errorf("rolloutPhases = %+v, want %+v", ph, want)
	}
}
