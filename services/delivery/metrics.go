package delivery

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// meterName names the meter of this package.
const meterName = "github.com/pulsehooks/pulsehooks/services/delivery"

// Reasons a delivery is put off (the why of putOff), and their label values.
const (
	whyFailing     = "endpoint failing"
	whyRateLimited = "rate limited"
	whyLaneFull    = "lane full"
	whyLaneWait    = "waited too long in its lane"
)

// statusClasses are the status_class label values: index status/100, and
// "none" for an attempt that got no response.
var statusClasses = [...]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

// outcomeLabel is the outcome label value of o: "success", "http_status"…
func outcomeLabel(o eventv1.Outcome) string {
	return strings.ToLower(strings.TrimPrefix(o.String(), "OUTCOME_"))
}

// statusClass is the index in statusClasses of an HTTP status.
func statusClass(status int) int {
	if c := status / 100; c >= 1 && c < len(statusClasses) {
		return c
	}
	return 0
}

// numOutcomes bounds the Outcome values, for tables indexed by outcome.
const numOutcomes = int(eventv1.Outcome_OUTCOME_BLOCKED) + 1

// meters are the delivery worker's instruments, with every bounded
// attribute set built once: recording costs no allocation on the hot path
// (unless per-endpoint labels are asked for).
type meters struct {
	endpointLabels bool

	attempts  metric.Int64Counter
	duration  metric.Float64Histogram
	endToEnd  metric.Float64Histogram
	putOff    metric.Int64Counter
	exhausted metric.Int64Counter
	disabled  metric.Int64Counter

	attemptSets  [numOutcomes][len(statusClasses)]attribute.Set
	attemptOpts  [numOutcomes][len(statusClasses)]metric.AddOption
	durationOpts [numOutcomes]metric.RecordOption
	putOffOpts   map[string]metric.AddOption
	outcomeOpts  [numOutcomes]metric.AddOption
	goneOpt      metric.AddOption
	failingOpt   metric.AddOption
}

func newMeters(m metric.Meter, endpointLabels bool) (*meters, error) {
	ms := &meters{endpointLabels: endpointLabels}
	var err error
	if ms.attempts, err = m.Int64Counter("pulsehooks.delivery.attempts",
		metric.WithDescription("Delivery attempts made, by outcome and HTTP status class."),
		metric.WithUnit("{attempt}")); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if ms.duration, err = m.Float64Histogram("pulsehooks.delivery.attempt.duration",
		metric.WithDescription("Duration of delivery attempts, from the request's start to the response's headers or the error."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(metrics.AttemptBuckets()...)); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if ms.endToEnd, err = m.Float64Histogram("pulsehooks.delivery.end_to_end",
		metric.WithDescription("Time from the event's acceptance by ingest to the endpoint's 2xx, for deliveries whose first attempt succeeds."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(metrics.EndToEndBuckets()...)); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if ms.putOff, err = m.Int64Counter("pulsehooks.delivery.put_off",
		metric.WithDescription("Deliveries put off to the retry schedule without an attempt, by reason."),
		metric.WithUnit("{delivery}")); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if ms.exhausted, err = m.Int64Counter("pulsehooks.delivery.exhausted",
		metric.WithDescription("Deliveries failed for good after the schedule's last attempt, by the outcome of that attempt."),
		metric.WithUnit("{delivery}")); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if ms.disabled, err = m.Int64Counter("pulsehooks.endpoints.disabled",
		metric.WithDescription("Endpoints this worker disabled, by reason (gone: 410; failing: no success for DisableAfter)."),
		metric.WithUnit("{endpoint}")); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	for o := range numOutcomes {
		ol := attribute.String("outcome", outcomeLabel(eventv1.Outcome(o)))
		for c, cl := range statusClasses {
			s := attribute.NewSet(ol, attribute.String("status_class", cl))
			ms.attemptSets[o][c] = s
			ms.attemptOpts[o][c] = metric.WithAttributeSet(s)
		}
		ms.durationOpts[o] = metric.WithAttributeSet(attribute.NewSet(ol))
		ms.outcomeOpts[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", outcomeLabel(eventv1.Outcome(o)))))
	}
	ms.putOffOpts = map[string]metric.AddOption{}
	for why, label := range map[string]string{whyFailing: "failing", whyRateLimited: "rate_limited", whyLaneFull: "lane_full", whyLaneWait: "lane_wait"} {
		ms.putOffOpts[why] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", label)))
	}
	ms.goneOpt = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "gone")))
	ms.failingOpt = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "failing")))
	return ms, nil
}

// attempt counts an attempt to endpoint with r's outcome and duration, and
// for the first attempt of a fresh delivery that succeeded, its end-to-end
// time from acceptedAt.
func (ms *meters) attempt(ctx context.Context, d *eventv1.Delivery, r *result, now time.Time) {
	o, c := int(r.outcome), statusClass(r.status)
	if o < 0 || o >= numOutcomes {
		o = 0
	}
	if ms.endpointLabels {
		s := ms.attemptSets[o][c]
		kvs := append(s.ToSlice(), attribute.String("endpoint", d.GetEndpointId()))
		ms.attempts.Add(ctx, 1, metric.WithAttributes(kvs...))
	} else {
		ms.attempts.Add(ctx, 1, ms.attemptOpts[o][c])
	}
	ms.duration.Record(ctx, r.duration.Seconds(), ms.durationOpts[o])
	if r.outcome == eventv1.Outcome_OUTCOME_SUCCESS && d.GetAttempt() == 0 && d.GetResendId() == "" && d.GetAcceptedAt() != nil {
		ms.endToEnd.Record(ctx, now.Sub(d.GetAcceptedAt().AsTime()).Seconds())
	}
}

// puttingOff counts a delivery put off for why.
func (ms *meters) puttingOff(ctx context.Context, why string) {
	if opt, ok := ms.putOffOpts[why]; ok {
		ms.putOff.Add(ctx, 1, opt)
	}
}

// exhaustedBy counts a delivery whose last attempt failed with outcome o.
func (ms *meters) exhaustedBy(ctx context.Context, o eventv1.Outcome) {
	if int(o) < 0 || int(o) >= numOutcomes {
		o = 0
	}
	ms.exhausted.Add(ctx, 1, ms.outcomeOpts[o])
}

// endpointDisabled counts an endpoint this worker disabled: for a 410 when
// gone, else for failing too long.
func (ms *meters) endpointDisabled(ctx context.Context, gone bool) {
	if gone {
		ms.disabled.Add(ctx, 1, ms.goneOpt)
		return
	}
	ms.disabled.Add(ctx, 1, ms.failingOpt)
}

// observeGauges registers the gauges read at collection: the retry
// schedule's items per partition (Redis) and the partition consumers'
// pending messages and pins (JetStream), each read at most every
// metrics.ServerReadInterval, and the partitions this worker holds.
func observeGauges(m metric.Meter, queue *retryq.Queue, consumers []jetstream.Consumer, held func() int) error {
	items, err := m.Int64ObservableGauge("pulsehooks.retry_schedule.items",
		metric.WithDescription("Items in the Redis retry schedule, per partition (every worker reports every partition: aggregate with max)."),
		metric.WithUnit("{item}"))
	if err != nil {
		return fmt.Errorf("delivery metrics: %w", err)
	}
	pending, err := m.Int64ObservableGauge("pulsehooks.stream.pending_messages",
		metric.WithDescription("Messages not yet delivered to a JetStream consumer, per stream and consumer."),
		metric.WithUnit("{message}"))
	if err != nil {
		return fmt.Errorf("delivery metrics: %w", err)
	}
	heldGauge, err := m.Int64ObservableGauge("pulsehooks.partitions.held",
		metric.WithDescription("Partitions of DELIVERIES this worker holds the lease of and pulls."),
		metric.WithUnit("{partition}"))
	if err != nil {
		return fmt.Errorf("delivery metrics: %w", err)
	}
	partSets := make([]metric.ObserveOption, len(consumers))
	consumerSets := make([]metric.ObserveOption, len(consumers))
	for i := range consumers {
		partSets[i] = metric.WithAttributeSet(attribute.NewSet(attribute.Int("partition", i)))
		consumerSets[i] = metric.WithAttributeSet(attribute.NewSet(
			attribute.String("stream", streams.Deliveries), attribute.String("consumer", streams.PartitionConsumer(i))))
	}
	lens := metrics.NewCache(metrics.ServerReadInterval, queue.Lens)
	infos := metrics.NewCache(metrics.ServerReadInterval, func(ctx context.Context) ([]uint64, error) {
		out := make([]uint64, len(consumers))
		for i, c := range consumers {
			info, err := c.Info(ctx)
			if err != nil {
				return nil, fmt.Errorf("consumer info of %s: %w", streams.PartitionConsumer(i), err)
			}
			out[i] = info.NumPending
		}
		return out, nil
	})
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		if ls, err := lens.Get(ctx); err == nil {
			for i, n := range ls {
				o.ObserveInt64(items, n, partSets[i])
			}
		}
		o.ObserveInt64(heldGauge, int64(held()))
		cs, err := infos.Get(ctx)
		if err != nil {
			return nil // absent rather than stale; the pull loops log JetStream trouble
		}
		for i, n := range cs {
			o.ObserveInt64(pending, int64(n), consumerSets[i])
		}
		return nil
	}, items, pending, heldGauge)
	if err != nil {
		return fmt.Errorf("delivery metrics: %w", err)
	}
	return nil
}
