package fanout

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// TestRedoMarkIsCarriedToDeliveries checks that the deliveries of an event
// ingest published again (an idempotency key retried) are marked as a redo,
// and those of a first publish are not.
func TestRedoMarkIsCarriedToDeliveries(t *testing.T) {
	h := newHarness(t, false)
	tenant, eps := addEndpoints(h, 3)
	h.start(testConfig(), nil)

	first := newEvent(tenant.GetId(), "job.completed")
	again := newEvent(tenant.GetId(), "job.completed")
	h.waitSettled(h.publishEvent(first, nil))
	h.waitSettled(h.publishEvent(again, nats.Header{streams.RedoHeader: []string{"1"}}))

	for _, c := range []struct {
		name, messageID string
		want            bool
	}{
		{"first publish", first.GetMessageId(), false},
		{"publish again", again.GetMessageId(), true},
	} {
		got := h.deliveriesOf(c.messageID)
		if len(got) != len(eps) {
			t.Fatalf("%s: stored %d deliveries, want %d", c.name, len(got), len(eps))
		}
		for ep, d := range got {
			if marked := d.header.Get(streams.RedoHeader) != ""; marked != c.want {
				t.Errorf("%s: delivery to %s marked as a redo: %v, want %v", c.name, ep, marked, c.want)
			}
		}
	}
}
