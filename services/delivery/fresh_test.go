package delivery

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestOnlyRepeatsAreCheckedAgainstCompletedDeliveries proves which
// deliveries consult the Redis record of completed deliveries. Both
// deliveries below have such a record already. The one marked as a redo
// (fanout or ingest did its work again) is acked without a request; the
// fresh one, which no worker can have completed, is sent without asking
// Redis — the record here is planted, as no real run makes one for a fresh
// delivery.
func TestOnlyRepeatsAreCheckedAgainstCompletedDeliveries(t *testing.T) {
	e := newEnv(t)
	freshRC, redoRC := newReceiver(t, nil), newReceiver(t, nil)
	freshEP, redoEP := newEndpoint(t, freshRC.srv.URL), newEndpoint(t, redoRC.srv.URL)
	e.config.put(freshEP)
	e.config.put(redoEP)
	fresh, redo := newDelivery(freshEP), newDelivery(redoEP)
	ctx := context.Background()
	for _, d := range []*eventv1.Delivery{fresh, redo} {
		if err := e.redis.Client(t).Set(ctx, deliveryDoneKey(d), "atmpt_planted", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e.startWorker(t, testConfig(), workerOptions{})
	e.publish(ctx, t, fresh)
	e.publishDelivery(ctx, t, redo, nats.Header{streams.RedoHeader: []string{"1"}})

	e.waitDeliveriesEmpty(t)
	if got := freshRC.count(); got != 1 {
		t.Errorf("fresh delivery: endpoint got %d requests, want 1", got)
	}
	if got := redoRC.count(); got != 0 {
		t.Errorf("redo of a completed delivery: endpoint got %d requests, want 0", got)
	}
}

// publishDelivery stores d in DELIVERIES as fanout does, with extra headers.
func (e *env) publishDelivery(ctx context.Context, t *testing.T, d *eventv1.Delivery, header nats.Header) {
	t.Helper()
	data, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: streams.DeliverySubject(d.GetEndpointId(), 1), Data: data, Header: header}
	if _, err := e.js.PublishMsg(ctx, msg, jetstream.WithMsgID(streams.DeliveryMsgID(d.GetMessageId(), d.GetEndpointId()))); err != nil {
		t.Fatalf("publish delivery: %v", err)
	}
}
