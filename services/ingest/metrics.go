package ingest

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName names the meter of this package.
const meterName = "github.com/pulsehooks/pulsehooks/services/ingest"

// Results of a publish besides the refusal codes (pulseclient.Code…).
const (
	resultAccepted  = "accepted"
	resultDuplicate = "duplicate"
)

// eventKey is one series of pulsehooks_ingest_events_total.
type eventKey struct{ tenant, eventType, result string }

// meters are ingest's instruments. Every label value is bounded: event
// types from the catalog (an unknown one is ""), results from a fixed list,
// tenants only when TenantLabels is on and only known ones. The attribute
// set of each series is built once.
type meters struct {
	tenantLabels bool
	events       metric.Int64Counter
	sets         sync.Map // eventKey → metric.AddOption
}

func newMeters(m metric.Meter, tenantLabels bool) (*meters, error) {
	ms := &meters{tenantLabels: tenantLabels}
	var err error
	if ms.events, err = m.Int64Counter("pulsehooks.ingest.events",
		metric.WithDescription("Events ingest answered, by event type and result: accepted, duplicate, or the refusal's error code."),
		metric.WithUnit("{event}")); err != nil {
		return nil, fmt.Errorf("ingest metrics: %w", err)
	}
	return ms, nil
}

// published counts one publish of in that ended with res and err. Labels
// name a tenant and an event type only when the catalog knows them.
func (s *Service) published(ctx context.Context, in input, res result, err error) {
	k := eventKey{result: resultAccepted}
	switch {
	case err != nil:
		k.result = asProblem(err).code
	case res.duplicate:
		k.result = resultDuplicate
	}
	if in.eventType != "" {
		if _, ok := s.view.EventType(in.eventType); ok {
			k.eventType = in.eventType
		}
	}
	if s.meters.tenantLabels && in.tenantID != "" {
		if _, ok := s.view.Tenant(in.tenantID); ok {
			k.tenant = in.tenantID
		}
	}
	s.meters.events.Add(ctx, 1, s.meters.option(k))
}

func (ms *meters) option(k eventKey) metric.AddOption {
	if opt, ok := ms.sets.Load(k); ok {
		return opt.(metric.AddOption)
	}
	kvs := []attribute.KeyValue{attribute.String("event_type", k.eventType), attribute.String("result", k.result)}
	if ms.tenantLabels {
		kvs = append(kvs, attribute.String("tenant", k.tenant))
	}
	opt, _ := ms.sets.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(kvs...)))
	return opt.(metric.AddOption)
}
