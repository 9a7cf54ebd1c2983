package fanout

import (
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// match returns the endpoints an event goes to: those subscribed to its type
// (filtered) and those subscribed to every type (all). An event with a
// target_endpoint_id (a test send) goes only to that endpoint, whatever its
// filter, and only when it exists and belongs to the event's tenant.
func (w *worker) match(ev *eventv1.Event) (filtered, all []*configv1.Endpoint) {
	target := ev.GetTargetEndpointId()
	if target == "" {
		return w.s.view.Match(ev.GetTenantId(), ev.GetEventType())
	}
	ep, ok := w.s.view.Endpoint(target)
	if !ok || ep.GetTenantId() != ev.GetTenantId() {
		w.s.log.Warn("test event for an unknown endpoint acknowledged without deliveries",
			"message_id", ev.GetMessageId(), "tenant_id", ev.GetTenantId(), "endpoint_id", target)
		return nil, nil
	}
	return []*configv1.Endpoint{ep}, nil
}
