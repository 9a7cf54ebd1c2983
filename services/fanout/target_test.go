package fanout

import (
	"testing"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

func TestTargetedEventReachesOnlyItsEndpoint(t *testing.T) {
	h := newHarness(t, false)
	tenant, other := newTenant(), newTenant()
	target := newEndpoint(tenant.GetId(), "job.failed") // filter excludes the type: a test send ignores it
	sibling := newEndpoint(tenant.GetId())
	foreign := newEndpoint(other.GetId())
	h.config.push(upsertTenant(tenant), upsertTenant(other),
		upsertEndpoint(target), upsertEndpoint(sibling), upsertEndpoint(foreign))
	h.start(testConfig(), nil)

	tests := []struct {
		name   string
		target *configv1.Endpoint
		want   []string
	}{
		{"own endpoint", target, []string{target.GetId()}},
		{"another tenant's endpoint", foreign, nil},
		{"unknown endpoint", &configv1.Endpoint{Id: "ep_unknown"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := newEvent(tenant.GetId(), "pulsehooks.test")
			ev.TargetEndpointId = tt.target.GetId()
			h.waitSettled(h.publishEvent(ev, nil))
			got := h.deliveriesOf(ev.GetMessageId())
			if len(got) != len(tt.want) {
				t.Fatalf("stored %d deliveries (%v), want %v", len(got), got, tt.want)
			}
			for _, id := range tt.want {
				if _, ok := got[id]; !ok {
					t.Errorf("no delivery to %s; got %v", id, got)
				}
			}
		})
	}
}
