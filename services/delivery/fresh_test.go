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

// TestEveryDeliveryIsCheckedAgainstCompletedDeliveries proves that no
// delivery skips the Redis record of completed deliveries, not even one that
// looks fresh (JetStream's first delivery of it, straight from fanout, no
// redo header): a nats-server that crashed can deliver again, as if for the
// first time, deliveries it had already had acked. Both deliveries below
// have a completion record already (planted, in the format a success
// writes); neither reaches its endpoint, and the attempt each record names
// is stored in ATTEMPTS, once.
func TestEveryDeliveryIsCheckedAgainstCompletedDeliveries(t *testing.T) {
	e := newEnv(t)
	freshRC, redoRC := newReceiver(t, nil), newReceiver(t, nil)
	freshEP, redoEP := newEndpoint(t, freshRC.srv.URL), newEndpoint(t, redoRC.srv.URL)
	e.config.put(freshEP)
	e.config.put(redoEP)
	fresh, redo := newDelivery(freshEP), newDelivery(redoEP)
	ctx := context.Background()
	started := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	for i, d := range []*eventv1.Delivery{fresh, redo} {
		c := completion{attemptID: []string{"atmpt_fresh", "atmpt_redo"}[i], attempt: 1, started: started, duration: 1500 * time.Microsecond, status: 200}
		if err := e.redis.Client(t).Set(ctx, deliveryDoneKey(d), c.String(), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	e.startWorker(t, testConfig(), workerOptions{})
	e.publish(ctx, t, fresh)
	e.publishDelivery(ctx, t, redo, nats.Header{streams.RedoHeader: []string{"1"}})

	e.waitDeliveriesEmpty(t)
	if got := freshRC.count(); got != 0 {
		t.Errorf("fresh delivery of a completed delivery: endpoint got %d requests, want 0", got)
	}
	if got := redoRC.count(); got != 0 {
		t.Errorf("redo of a completed delivery: endpoint got %d requests, want 0", got)
	}
	got := map[string]*eventv1.Attempt{}
	for _, a := range e.attempts(t, 2) {
		got[a.GetId()] = a
	}
	for id, d := range map[string]*eventv1.Delivery{"atmpt_fresh": fresh, "atmpt_redo": redo} {
		a := got[id]
		if a == nil {
			t.Errorf("attempt %s not restored; ATTEMPTS holds %v", id, got)
			continue
		}
		if a.GetMessageId() != d.GetMessageId() || a.GetEndpointId() != d.GetEndpointId() || a.GetAttempt() != 1 ||
			a.GetStatusCode() != 200 || a.GetOutcome() != eventv1.Outcome_OUTCOME_SUCCESS ||
			a.GetState() != eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED ||
			!a.GetStartedAt().AsTime().Equal(started) || a.GetDurationUs() != 1500 {
			t.Errorf("restored attempt %s = %v, want the record's message, endpoint, attempt 1, 200, started %v, 1500 µs", id, a, started)
		}
	}
	if n := e.attemptCount(t); n != 2 {
		t.Errorf("ATTEMPTS holds %d records, want 2", n)
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
