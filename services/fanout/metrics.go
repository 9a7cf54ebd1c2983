package fanout

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// meterName names the meter of this package.
const meterName = "github.com/pulsehooks/pulsehooks/services/fanout"

// meters are fanout's instruments. The attribute set of each event type is
// built once (event types come from the catalog, so they are bounded).
type meters struct {
	deliveries metric.Int64Counter
	byType     sync.Map // event type → metric.AddOption
}

// newMeters makes the instruments, and the gauge of the fanout consumer's
// pending events, read at most every metrics.ServerReadInterval.
func newMeters(m metric.Meter, consumer jetstream.Consumer) (*meters, error) {
	ms := &meters{}
	var err error
	if ms.deliveries, err = m.Int64Counter("pulsehooks.fanout.deliveries",
		metric.WithDescription("Deliveries fanout stored in DELIVERIES, by event type (a redone fan-out counts again)."),
		metric.WithUnit("{delivery}")); err != nil {
		return nil, fmt.Errorf("fanout metrics: %w", err)
	}
	pending, err := m.Int64ObservableGauge("pulsehooks.stream.pending_messages",
		metric.WithDescription("Messages not yet delivered to a JetStream consumer, per stream and consumer."),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("fanout metrics: %w", err)
	}
	set := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("stream", streams.Events), attribute.String("consumer", streams.FanoutConsumer)))
	info := metrics.NewCache(metrics.ServerReadInterval, func(ctx context.Context) (uint64, error) {
		i, err := consumer.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("consumer info of %s: %w", streams.FanoutConsumer, err)
		}
		return i.NumPending, nil
	})
	if _, err := m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if n, err := info.Get(ctx); err == nil {
			o.ObserveInt64(pending, int64(n), set)
		}
		return nil
	}, pending); err != nil {
		return nil, fmt.Errorf("fanout metrics: %w", err)
	}
	return ms, nil
}

// fannedOut counts n deliveries of an event of eventType.
func (ms *meters) fannedOut(ctx context.Context, eventType string, n int) {
	if n == 0 {
		return
	}
	opt, ok := ms.byType.Load(eventType)
	if !ok {
		opt, _ = ms.byType.LoadOrStore(eventType, metric.WithAttributeSet(attribute.NewSet(attribute.String("event_type", eventType))))
	}
	ms.deliveries.Add(ctx, int64(n), opt.(metric.AddOption))
}
