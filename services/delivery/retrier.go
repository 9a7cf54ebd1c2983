package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// disableTimeout bounds the call that disables an endpoint.
const disableTimeout = 5 * time.Second

// failed settles a delivery whose attempt number n failed, with attempt
// record a not yet stored: 410 Gone, or an endpoint failing for longer than
// DisableAfter, disables the endpoint and drops the delivery; after the
// schedule's last attempt the delivery is exhausted; otherwise the next
// attempt goes into the Redis schedule and the message is acked once Redis
// holds it.
func (dl *deliverer) failed(ctx context.Context, log *slog.Logger, j *job, ep *configv1.Endpoint, n uint32, r *result, a *eventv1.Attempt) {
	d := j.delivery
	now := time.Now()
	reason := ""
	if r.status == http.StatusGone {
		reason = "the endpoint answered 410 Gone"
	} else if first, err := dl.streaks.failed(ctx, ep.GetId(), now); err != nil {
		log.WarnContext(ctx, "cannot track the endpoint's run of failures", "err", err)
	} else if now.Sub(first) >= dl.cfg.DisableAfter {
		reason = fmt.Sprintf("failing continuously since %s", first.UTC().Format(time.RFC3339))
	}
	if reason != "" {
		// 410 drops the delivery even if the endpoint cannot be disabled
		// right now: the next delivery's 410 tries again.
		if dl.disable(ctx, log, ep, reason, a) || r.status == http.StatusGone {
			a.State = eventv1.DeliveryState_DELIVERY_STATE_DROPPED
			if !dl.record(ctx, log, a) {
				dl.leave(ctx, log, j)
				return
			}
			log.WarnContext(ctx, "delivery dropped: endpoint disabled", "reason", reason)
			dl.ack(ctx, log, j)
			return
		}
	}

	delay, more := dl.backoff.delay(n, r.status, r.response, now)
	if !more {
		a.State = eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED
		if !dl.record(ctx, log, a) {
			dl.leave(ctx, log, j)
			return
		}
		dl.meters.exhaustedBy(ctx, r.outcome)
		log.WarnContext(ctx, "delivery failed: last attempt of the schedule", "attempts", n)
		dl.ops.publish(ctx, attemptEvent(streams.OpAttemptExhausted, a, fmt.Sprintf("all %d attempts failed", n)))
		dl.ack(ctx, log, j)
		return
	}
	next := now.Add(delay)
	a.State = eventv1.DeliveryState_DELIVERY_STATE_RETRYING
	a.NextAttemptAt = timestamppb.New(next)
	// The record goes before the schedule: a delivery left unacked for
	// want of its record must not also be waiting in the schedule.
	if !dl.record(ctx, log, a) {
		dl.leave(ctx, log, j)
		return
	}
	dl.states.failed(ep.GetId(), now, next)
	if n == uint32(dl.cfg.FailingAfter) {
		dl.ops.publish(ctx, attemptEvent(streams.OpAttemptFailing, a, fmt.Sprintf("%d attempts failed in a row", n)))
	}
	log.DebugContext(ctx, "retry scheduled", "next_attempt_at", next, "delay", delay)
	it := retryq.Item{
		Seq:      d.GetEventSequence(),
		Endpoint: d.GetEndpointId(),
		Attempt:  n,
		Hops:     d.GetScheduleCount() + 1,
		ResendID: d.GetResendId(),
	}
	linkToAttempt(ctx, &it)
	dl.schedule(ctx, log, j, it, next)
}

// putOff takes a delivery out of the stream into the schedule, due at due,
// without counting an attempt: its endpoint is failing, saturated or rate
// limited (reserved: a rate-limit slot at due is already its own).
func (dl *deliverer) putOff(ctx context.Context, log *slog.Logger, j *job, due time.Time, why string, reserved bool) {
	d := j.delivery
	it := retryq.Item{
		Seq:      d.GetEventSequence(),
		Endpoint: d.GetEndpointId(),
		Attempt:  d.GetAttempt(),
		Hops:     d.GetScheduleCount() + 1,
		ResendID: d.GetResendId(),
	}
	if reserved {
		it.Flags = flagRateReserved
	}
	ctx, span := dl.startPutOff(ctx, j, due, why)
	defer span.End()
	log.DebugContext(ctx, "delivery put off", "why", why, "until", due)
	dl.meters.puttingOff(ctx, why)
	// The state record's publish overlaps the Redis write; both are stored
	// before the ack.
	st := dl.recorder.startState(stateRecord(d, eventv1.DeliveryState_DELIVERY_STATE_PUT_OFF, why, time.Now(), due))
	dl.scheduleThen(ctx, log, j, it, due, func() bool { return dl.recorder.awaitState(ctx, log, st) })
}

// schedule stores it in the Redis schedule, due at due, then acks the
// delivery's message: the delivery is never in neither place. If Redis does
// not take it, or has replicas and none confirmed the write (so a failover
// could lose it), the message is nakked instead and JetStream delivers it again
// after RetryDelay. A delivery without an event sequence cannot be referenced
// from the schedule: it is nakked with the delay.
func (dl *deliverer) schedule(ctx context.Context, log *slog.Logger, j *job, it retryq.Item, due time.Time) {
	dl.scheduleThen(ctx, log, j, it, due, nil)
}

// scheduleThen is schedule that also waits, before the ack, for stored
// (when not nil) to report true; false leaves the delivery unacked (it is
// in the schedule too, and the completion record stops a second send).
func (dl *deliverer) scheduleThen(ctx context.Context, log *slog.Logger, j *job, it retryq.Item, due time.Time, stored func() bool) {
	if it.Seq == 0 {
		log.WarnContext(ctx, "delivery has no event sequence, so it cannot enter the retry schedule; nakking it with the delay instead")
		dl.nak(ctx, log, j, max(time.Until(due), 0))
		return
	}
	sctx, cancel := context.WithTimeout(ctx, redisTimeout)
	err := dl.queue.Schedule(sctx, it, due)
	cancel()
	if errors.Is(err, retryq.ErrNotReplicated) {
		// It may be in the schedule too, and come back from there as well:
		// the completion record stops a second send after a success.
		log.WarnContext(ctx, "retry schedule write not confirmed by a Redis replica; the delivery stays in the stream", "err", err, "retry_in", dl.cfg.RetryDelay)
		dl.nak(ctx, log, j, dl.cfg.RetryDelay)
		return
	}
	if err != nil {
		log.ErrorContext(ctx, "retry schedule unreachable; the delivery stays in the stream", "err", err, "retry_in", dl.cfg.RetryDelay)
		dl.nak(ctx, log, j, dl.cfg.RetryDelay)
		return
	}
	dl.kick(due)
	if stored != nil && !stored() {
		dl.leave(ctx, log, j)
		return
	}
	dl.ack(ctx, log, j)
}

// disable asks the config service to disable ep and reports whether it is
// disabled now. The one call that changed it publishes endpoint.disabled.
func (dl *deliverer) disable(ctx context.Context, log *slog.Logger, ep *configv1.Endpoint, reason string, a *eventv1.Attempt) bool {
	cctx, cancel := context.WithTimeout(ctx, disableTimeout)
	defer cancel()
	resp, err := dl.config.DisableEndpoint(cctx, &configv1.DisableEndpointRequest{
		TenantId:   ep.GetTenantId(),
		EndpointId: ep.GetId(),
		Reason:     reason,
	})
	if err != nil {
		log.ErrorContext(ctx, "cannot disable the endpoint", "reason", reason, "err", err)
		return false
	}
	dl.states.markDisabled(ep.GetId(), time.Now(), resp.GetEndpoint().GetRevision())
	if err := dl.streaks.clear(ctx, ep.GetId()); err != nil {
		log.WarnContext(ctx, "cannot clear the endpoint's run of failures", "err", err)
	}
	if resp.GetChanged() {
		dl.meters.endpointDisabled(ctx, a.GetStatusCode() == http.StatusGone)
		log.WarnContext(ctx, "endpoint disabled", "reason", reason)
		dl.ops.publishDisabled(ctx, attemptEvent(streams.OpEndpointDisabled, a, reason), resp.GetEndpoint().GetRevision())
	}
	return true
}
