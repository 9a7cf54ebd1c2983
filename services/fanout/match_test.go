package fanout

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

func TestFanOutMatchesEndpointFilters(t *testing.T) {
	h := newHarness(t, false)
	tenant, other := newTenant(), newTenant()
	disabled := newEndpoint(tenant.GetId())
	disabled.Enabled = false
	endpoints := []struct {
		name string
		ep   *configv1.Endpoint
		want bool
	}{
		{"filter lists the type", newEndpoint(tenant.GetId(), "job.failed", "job.completed"), true},
		{"empty filter", newEndpoint(tenant.GetId()), true},
		{"filter lists the type twice", newEndpoint(tenant.GetId(), "job.completed", "job.completed"), true},
		{"filter lists other types", newEndpoint(tenant.GetId(), "job.failed"), false},
		{"disabled", disabled, false},
		{"other tenant, empty filter", newEndpoint(other.GetId()), false},
		{"other tenant, filter lists the type", newEndpoint(other.GetId(), "job.completed"), false},
	}
	changes := []*configv1.Change{upsertTenant(tenant), upsertTenant(other)}
	for _, e := range endpoints {
		changes = append(changes, upsertEndpoint(e.ep))
	}
	h.config.push(changes...)
	h.start(testConfig(), nil)

	ev := newEvent(tenant.GetId(), "job.completed")
	seq := h.publishEvent(ev, nil)
	h.waitSettled(seq)

	got := h.deliveriesOf(ev.GetMessageId())
	wantCount := 0
	for _, e := range endpoints {
		t.Run(e.name, func(t *testing.T) {
			d, ok := got[e.ep.GetId()]
			if ok != e.want {
				t.Fatalf("delivery stored = %v, want %v", ok, e.want)
			}
			if !ok {
				return
			}
			if want := streams.DeliverySubject(e.ep.GetId(), testPartitions); d.subject != want {
				t.Errorf("subject = %q, want %q", d.subject, want)
			}
			if want := streams.DeliveryMsgID(ev.GetMessageId(), e.ep.GetId()); d.msgID != want {
				t.Errorf("Nats-Msg-Id = %q, want %q", d.msgID, want)
			}
			want := &eventv1.Delivery{
				MessageId:     ev.GetMessageId(),
				TenantId:      tenant.GetId(),
				EndpointId:    e.ep.GetId(),
				EventType:     "job.completed",
				Payload:       ev.GetPayload(),
				EventSequence: seq,
				AcceptedAt:    ev.GetAcceptedAt(),
				Attempt:       0,
			}
			if !proto.Equal(d.delivery, want) {
				t.Errorf("delivery = %v, want %v", d.delivery, want)
			}
		})
		if e.want {
			wantCount++
		}
	}
	if len(got) != wantCount {
		t.Errorf("stored %d deliveries, want %d", len(got), wantCount)
	}
}

func TestEventsWithoutDeliveriesAreAcked(t *testing.T) {
	h := newHarness(t, false)
	empty, filtered := newTenant(), newTenant()
	h.config.push(upsertTenant(empty), upsertTenant(filtered), upsertEndpoint(newEndpoint(filtered.GetId(), "job.failed")))
	h.start(testConfig(), nil)

	tests := []struct {
		name  string
		event *eventv1.Event
	}{
		{"tenant without endpoints", newEvent(empty.GetId(), "job.completed")},
		{"no endpoint subscribes to the type", newEvent(filtered.GetId(), "job.completed")},
		{"unknown tenant", newEvent("ten_gone", "job.completed")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := h.publishEvent(tt.event, nil)
			h.checkNoRedelivery(h.waitSettled(seq))
			if got := h.deliveriesOf(tt.event.GetMessageId()); len(got) != 0 {
				t.Errorf("stored %d deliveries, want 0", len(got))
			}
		})
	}
}

func TestWatchChangesApplyToTheNextEvent(t *testing.T) {
	h := newHarness(t, false)
	tenant := newTenant()
	first := newEndpoint(tenant.GetId())
	h.config.push(upsertTenant(tenant), upsertEndpoint(first))
	svc := h.start(testConfig(), nil)

	added := newEndpoint(tenant.GetId(), "job.completed")
	firstDisabled := proto.CloneOf(first)
	firstDisabled.Enabled = false
	steps := []struct {
		name    string
		changes []*configv1.Change
		// applied reports whether the service's view shows the changes.
		applied func() error
		want    []*configv1.Endpoint
	}{
		{
			name: "initial snapshot",
			want: []*configv1.Endpoint{first},
		},
		{
			name:    "endpoint added",
			changes: []*configv1.Change{upsertEndpoint(added)},
			applied: func() error { return viewHas(svc, added, true) },
			want:    []*configv1.Endpoint{first, added},
		},
		{
			name:    "endpoint disabled",
			changes: []*configv1.Change{upsertEndpoint(firstDisabled)},
			applied: func() error { return viewHas(svc, firstDisabled, true) },
			want:    []*configv1.Endpoint{added},
		},
		{
			name:    "endpoint deleted",
			changes: []*configv1.Change{deleteEndpoint(added)},
			applied: func() error { return viewHas(svc, added, false) },
			want:    nil,
		},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if len(step.changes) > 0 {
				h.config.push(step.changes...)
				testenv.WaitFor(t, settleTimeout, step.applied)
			}
			ev := newEvent(tenant.GetId(), "job.completed")
			h.waitSettled(h.publishEvent(ev, nil))
			got := h.deliveriesOf(ev.GetMessageId())
			if len(got) != len(step.want) {
				t.Errorf("stored %d deliveries, want %d", len(got), len(step.want))
			}
			for _, ep := range step.want {
				if _, ok := got[ep.GetId()]; !ok {
					t.Errorf("no delivery to %s", ep.GetId())
				}
			}
		})
	}
}

// viewHas reports whether svc's view holds ep as given (present) or not at all.
func viewHas(svc *Service, ep *configv1.Endpoint, present bool) error {
	got, ok := svc.view.Endpoint(ep.GetId())
	switch {
	case ok != present:
		return fmt.Errorf("endpoint %s in view = %v, want %v", ep.GetId(), ok, present)
	case present && !proto.Equal(got, ep):
		return fmt.Errorf("endpoint in view = %v, want %v", got, ep)
	}
	return nil
}
