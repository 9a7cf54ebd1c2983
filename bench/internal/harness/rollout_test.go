package harness

import (
	"context"
	"fmt"
	"testing"

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
