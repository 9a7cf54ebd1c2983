package delivery

import (
	"context"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestResendIsSentAgainOnce: a delivery resent by hand is sent even though
// the message was delivered before, with the same webhook-id; the same
// resend redelivered is not sent twice; and a resend whose attempt fails is
// retried from the schedule like any delivery, although the message was
// delivered before.
func TestResendIsSentAgainOnce(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 3 { // the first attempt of the second resend
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)
	rc.next(t)
	e.waitSettled(t, 1)

	resend := func(d *eventv1.Delivery, resendID, natsMsgID string) {
		t.Helper()
		r := proto.Clone(d).(*eventv1.Delivery)
		r.ResendId = resendID
		data, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(context.Background(), streams.DeliverySubject(d.GetEndpointId(), 1), data, jetstream.WithMsgID(natsMsgID)); err != nil {
			t.Fatal(err)
		}
	}
	resend(d, "rsnd_1", "r1")
	if got := rc.next(t); got.header.Get("webhook-id") != d.MessageId {
		t.Errorf("resent webhook-id = %q, want %q", got.header.Get("webhook-id"), d.MessageId)
	}
	e.waitSettled(t, 1)
	resend(d, "rsnd_1", "r1-redelivered") // the same resend again, as after a crash before its ack
	e.waitSettled(t, 1)
	if n := rc.count(); n != 2 {
		t.Errorf("endpoint got %d requests after the same resend twice, want 2", n)
	}
	for _, key := range []string{doneKey(d.MessageId, ep.Id), doneKey(d.MessageId, ep.Id) + ".rsnd_1"} {
		if n, err := e.redis.Client(t).Exists(context.Background(), key).Result(); err != nil || n != 1 {
			t.Errorf("idempotency key %s exists = %d (%v), want 1", key, n, err)
		}
	}

	resend(d, "rsnd_2", "r2") // fails once, then its retry succeeds
	rc.next(t)
	rc.next(t)
	attempts := e.attemptsOf(t, d.MessageId, 4)
	e.waitSettled(t, 1)
	if n := rc.count(); n != 4 {
		t.Errorf("endpoint got %d requests, want 4", n)
	}
	last := attempts[len(attempts)-1]
	if last.State != eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED || last.Attempt != 2 {
		t.Errorf("last attempt = #%d %v, want #2 SUCCEEDED (the resend's retry)", last.Attempt, last.State)
	}
}
