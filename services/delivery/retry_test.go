package delivery

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestExhaustedAfterTheLastAttempt: an endpoint that always fails gets
// exactly one request per attempt of the schedule; each attempt record says
// the delivery is retrying (and when), the last that it is exhausted; the
// failing and exhausted operational events are published.
func TestExhaustedAfterTheLastAttempt(t *testing.T) {
	e := newEnv(t)
	ops := e.collectOps(t)
	s := newSink(t)
	s.status(http.StatusInternalServerError)
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.Schedule = testSchedule[:4]
	e.startWorker(t, cfg, workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)

	attempts := e.attemptsOf(t, d.MessageId, 4)
	exhausted := ops.wait(t, streams.OpAttemptExhausted, nil)
	e.waitSettled(t, 1)
	if got, _ := s.counts(); got != 4 {
		t.Errorf("endpoint got %d requests, want 4 (one per attempt)", got)
	}
	for i, a := range attempts {
		wantState := eventv1.DeliveryState_DELIVERY_STATE_RETRYING
		if i == 3 {
			wantState = eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED
		}
		if a.Attempt != uint32(i+1) || a.State != wantState || a.StatusCode != 500 {
			t.Errorf("attempt record %d = #%d %v %d, want #%d %v 500", i, a.Attempt, a.State, a.StatusCode, i+1, wantState)
		}
		if wantState == eventv1.DeliveryState_DELIVERY_STATE_RETRYING {
			if a.NextAttemptAt == nil || !a.NextAttemptAt.AsTime().After(a.StartedAt.AsTime()) {
				t.Errorf("attempt %d next_attempt_at = %v, want a time after its start %v", a.Attempt, a.NextAttemptAt, a.StartedAt.AsTime())
			} else if next := attempts[i+1].StartedAt.AsTime(); next.Before(a.NextAttemptAt.AsTime()) {
				t.Errorf("attempt %d started at %v, before it was due at %v", a.Attempt+1, next, a.NextAttemptAt.AsTime())
			}
		} else if a.NextAttemptAt != nil {
			t.Errorf("exhausted attempt has next_attempt_at %v", a.NextAttemptAt.AsTime())
		}
	}
	if exhausted.MessageId != d.MessageId || exhausted.EndpointId != ep.Id || exhausted.TenantId != testTenant ||
		exhausted.Attempt != 4 || exhausted.AttemptId != attempts[3].Id || exhausted.StatusCode != 500 || exhausted.OccurredAt == nil {
		t.Errorf("exhausted event = %v, want message %s, endpoint %s, attempt 4 (%s), status 500", exhausted, d.MessageId, ep.Id, attempts[3].Id)
	}
	failing := ops.wait(t, streams.OpAttemptFailing, nil)
	if failing.Attempt != 3 || failing.NextAttemptAt == nil || failing.MessageId != d.MessageId {
		t.Errorf("failing event = %v, want attempt 3 of %s with its next attempt time", failing, d.MessageId)
	}
	if n := ops.count(streams.OpAttemptFailing); n != 1 {
		t.Errorf("%d failing events, want 1", n)
	}
}

// TestRecoveredAfterFailing: a delivery that succeeds after FailingAfter
// failures publishes message.attempt.recovered; the attempt numbers count
// only attempts made.
func TestRecoveredAfterFailing(t *testing.T) {
	e := newEnv(t)
	ops := e.collectOps(t)
	s := newSink(t)
	s.setAnswer(func(_ string, n int) (int, http.Header) {
		if n <= 3 {
			return http.StatusBadGateway, nil
		}
		return http.StatusNoContent, nil
	})
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	d := newDelivery(ep)
	ctx, span := sdktrace.NewTracerProvider().Tracer("ingest").Start(context.Background(), "publish")
	e.publish(ctx, t, d)
	span.End()

	s.waitSucceeded(t, []string{d.MessageId})
	rec := ops.wait(t, streams.OpAttemptRecovered, nil)
	attempts := e.attemptsOf(t, d.MessageId, 4)
	if rec.Attempt != 4 || rec.MessageId != d.MessageId || rec.AttemptId != attempts[3].Id {
		t.Errorf("recovered event = %v, want attempt 4 of %s", rec, d.MessageId)
	}
	var got []string
	for _, a := range attempts {
		got = append(got, fmt.Sprintf("#%d %v", a.Attempt, a.State))
	}
	want := []string{"#1 DELIVERY_STATE_RETRYING", "#2 DELIVERY_STATE_RETRYING", "#3 DELIVERY_STATE_RETRYING", "#4 DELIVERY_STATE_SUCCEEDED"}
	if !slices.Equal(got, want) {
		t.Errorf("attempts = %v, want %v", got, want)
	}
	// Retries return from the schedule with the event's trace context.
	for _, a := range attempts {
		if a.TraceId != span.SpanContext().TraceID().String() {
			t.Errorf("attempt #%d trace id = %q, want the event's %s", a.Attempt, a.TraceId, span.SpanContext().TraceID())
		}
	}
	e.waitSettled(t, 1)
	if n, _ := s.counts(); n != 4 {
		t.Errorf("endpoint got %d requests, want 4", n)
	}
}

// TestRetryAfterIsHonoured: 429 and 503 with Retry-After set the next
// attempt within 1–2× the scheduled delay.
func TestRetryAfterIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		wantDelay  time.Duration // from the end of the attempt
	}{
		{"429 asks for longer than twice the delay", http.StatusTooManyRequests, "5", 600 * time.Millisecond},
		{"503 asks for less than the delay", http.StatusServiceUnavailable, "0", 300 * time.Millisecond},
		{"500 is not asked", http.StatusInternalServerError, "5", 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := newSink(t)
			s.setAnswer(func(_ string, n int) (int, http.Header) {
				if n == 1 {
					return tc.status, http.Header{"Retry-After": {tc.retryAfter}}
				}
				return http.StatusOK, nil
			})
			ep := newEndpoint(t, s.srv.URL)
			e.config.put(ep)
			cfg := testConfig()
			cfg.Schedule = []time.Duration{0, 300 * time.Millisecond}
			cfg.Jitter = -1
			e.startWorker(t, cfg, workerOptions{})
			d := newDelivery(ep)
			e.publish(context.Background(), t, d)

			attempts := e.attemptsOf(t, d.MessageId, 2)
			first := attempts[0]
			end := first.StartedAt.AsTime().Add(time.Duration(first.DurationUs) * time.Microsecond)
			delay := first.NextAttemptAt.AsTime().Sub(end)
			// The delay is taken from a moment just after the attempt ended;
			// the margin is well below what tells the cases apart.
			if delay < tc.wantDelay || delay > tc.wantDelay+250*time.Millisecond {
				t.Errorf("next attempt due %v after the first ended, want %v", delay, tc.wantDelay)
			}
			if got := attempts[1].StartedAt.AsTime(); got.Before(first.NextAttemptAt.AsTime()) {
				t.Errorf("second attempt at %v, before it was due at %v", got, first.NextAttemptAt.AsTime())
			}
			if attempts[1].State != eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED {
				t.Errorf("second attempt state = %v, want SUCCEEDED", attempts[1].State)
			}
		})
	}
}

// TestGoneDisablesTheEndpoint: 410 drops the delivery, disables the endpoint
// through the config service, publishes endpoint.disabled, and later
// deliveries to it are dropped without a request.
func TestGoneDisablesTheEndpoint(t *testing.T) {
	e := newEnv(t)
	ops := e.collectOps(t)
	s := newSink(t)
	s.status(http.StatusGone)
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)

	a := e.attemptsOf(t, d.MessageId, 1)[0]
	if a.State != eventv1.DeliveryState_DELIVERY_STATE_DROPPED || a.StatusCode != http.StatusGone || a.NextAttemptAt != nil {
		t.Errorf("attempt = %v %d next %v, want DROPPED 410 and no next attempt", a.State, a.StatusCode, a.NextAttemptAt)
	}
	ev := ops.wait(t, streams.OpEndpointDisabled, nil)
	if ev.EndpointId != ep.Id || ev.TenantId != testTenant || ev.MessageId != d.MessageId || ev.AttemptId != a.Id || !strings.Contains(ev.Reason, "410") {
		t.Errorf("endpoint.disabled event = %v, want endpoint %s, message %s, a 410 reason", ev, ep.Id, d.MessageId)
	}
	calls := e.config.disableCalls()
	if len(calls) != 1 || calls[0].GetEndpointId() != ep.Id || calls[0].GetTenantId() != testTenant || !strings.Contains(calls[0].GetReason(), "410") {
		t.Errorf("DisableEndpoint calls = %v, want one for %s with a 410 reason", calls, ep.Id)
	}

	more := []*eventv1.Delivery{newDelivery(ep), newDelivery(ep)}
	for _, d := range more {
		e.publish(context.Background(), t, d)
	}
	e.waitSettled(t, 1)
	if n, _ := s.counts(); n != 1 {
		t.Errorf("endpoint got %d requests, want only the first", n)
	}
	if n := ops.count(streams.OpEndpointDisabled); n != 1 {
		t.Errorf("%d endpoint.disabled events, want 1", n)
	}
	if n := e.attemptCount(t); n != 1 {
		t.Errorf("ATTEMPTS holds %d records, want 1", n)
	}
}

// TestContinuousFailureDisablesTheEndpoint: an endpoint failing every
// attempt for DisableAfter is disabled with its deliveries dropped.
func TestContinuousFailureDisablesTheEndpoint(t *testing.T) {
	e := newEnv(t)
	ops := e.collectOps(t)
	s := newSink(t)
	s.status(http.StatusInternalServerError)
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.Schedule = append([]time.Duration{0}, slices.Repeat([]time.Duration{30 * time.Millisecond}, 19)...) // 20 attempts
	cfg.DisableAfter = 250 * time.Millisecond
	e.startWorker(t, cfg, workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)

	ev := ops.wait(t, streams.OpEndpointDisabled, nil)
	if !strings.Contains(ev.Reason, "failing continuously since") {
		t.Errorf("endpoint.disabled reason = %q, want it to say since when the endpoint failed", ev.Reason)
	}
	e.waitSettled(t, 1)
	attempts := e.attemptsOf(t, d.MessageId, 2)
	last := attempts[len(attempts)-1]
	if last.State != eventv1.DeliveryState_DELIVERY_STATE_DROPPED || last.Id != ev.AttemptId {
		t.Errorf("last attempt = #%d %v (%s), want DROPPED and named by the event (%s)", last.Attempt, last.State, last.Id, ev.AttemptId)
	}
	span := last.StartedAt.AsTime().Sub(attempts[0].StartedAt.AsTime())
	if span < cfg.DisableAfter {
		t.Errorf("disabled after failing for %v, want at least %v", span, cfg.DisableAfter)
	}
	if n, _ := s.counts(); n != len(attempts) {
		t.Errorf("endpoint got %d requests, want one per attempt record (%d)", n, len(attempts))
	}
	if n := len(e.config.disableCalls()); n != 1 {
		t.Errorf("%d DisableEndpoint calls, want 1", n)
	}
}

// TestIsolation puts an endpoint that never answers, one that answers 500
// and a healthy one in the same partition: every delivery of the healthy
// endpoint arrives while the other two are still hanging and failing, and
// the hanging one never holds more than its concurrency cap.
func TestIsolation(t *testing.T) {
	e := newEnv(t)
	hangRelease := make(chan struct{})
	hang := newSink(t)
	hang.srv.Config.Handler = wrapHang(hang.srv.Config.Handler, hangRelease)
	failing, healthy := newSink(t), newSink(t)
	failing.status(http.StatusInternalServerError)
	hangEP, failEP, okEP := newEndpoint(t, hang.srv.URL), newEndpoint(t, failing.srv.URL), newEndpoint(t, healthy.srv.URL)
	hangEP.TimeoutMs = 30000
	e.config.put(hangEP)
	e.config.put(failEP)
	e.config.put(okEP)
	cfg := testConfig()
	cfg.LaneConcurrency = 2
	cfg.LaneQueue = 2
	cfg.Schedule = []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	e.startWorker(t, cfg, workerOptions{})
	// Cleanups run last first: the hanging requests end before the worker
	// is stopped (it waits for attempts in flight).
	t.Cleanup(func() { close(hangRelease) })

	ctx := context.Background()
	const n = 30
	for i := 0; i < n; i++ {
		e.publish(ctx, t, newDelivery(hangEP))
		e.publish(ctx, t, newDelivery(failEP))
	}
	// The hanging endpoint holds its slots and the failing one has failed.
	testenv.WaitFor(t, waitTimeout, func() error {
		hung, _ := hang.counts()
		failed, _ := failing.counts()
		if hung < cfg.LaneConcurrency || failed < 2 {
			return fmt.Errorf("hanging endpoint has %d requests, failing one %d", hung, failed)
		}
		return nil
	})
	var ids []string
	for i := 0; i < n; i++ {
		d := newDelivery(okEP)
		ids = append(ids, d.MessageId)
		e.publish(ctx, t, d)
	}
	healthy.waitSucceeded(t, ids)

	if hung, _ := hang.counts(); hung != cfg.LaneConcurrency {
		t.Errorf("hanging endpoint got %d requests, want its concurrency cap %d", hung, cfg.LaneConcurrency)
	}
	if _, ok := failing.counts(); ok != 0 {
		t.Errorf("failing endpoint answered %d successes", ok)
	}
	if got, _ := healthy.counts(); got != n {
		t.Errorf("healthy endpoint got %d requests, want %d", got, n)
	}
	// The partition is not clogged: the saturated and failing endpoints'
	// deliveries wait in the schedule, not in the stream.
	if held := e.scheduleLen(t, 1); held == 0 {
		t.Error("the retry schedule is empty, want the other endpoints' deliveries in it")
	}
}

// wrapHang makes h hang until release is closed (or the request ends).
func wrapHang(h http.Handler, release <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(noWrite{w}, r) // counts the request
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
}

// noWrite drops the wrapped handler's answer, so the request hangs.
type noWrite struct{ http.ResponseWriter }

func (noWrite) WriteHeader(int)             {}
func (noWrite) Write(b []byte) (int, error) { return len(b), nil }
func (n noWrite) Header() http.Header       { return http.Header{} }

// TestRateLimitSpacesRequests: an endpoint limited to 20 requests/s gets a
// burst of deliveries no faster than that, and all of them.
func TestRateLimitSpacesRequests(t *testing.T) {
	e := newEnv(t)
	s := newSink(t)
	var times []time.Time
	s.setAnswer(func(string, int) (int, http.Header) {
		times = append(times, time.Now()) // under the sink's lock
		return http.StatusOK, nil
	})
	ep := newEndpoint(t, s.srv.URL)
	ep.RateLimit = 20
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	const n = 11
	var ids []string
	for i := 0; i < n; i++ {
		d := newDelivery(ep)
		ids = append(ids, d.MessageId)
		e.publish(context.Background(), t, d)
	}
	s.waitSucceeded(t, ids)
	e.waitSettled(t, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(times) != n {
		t.Fatalf("endpoint got %d requests, want %d", len(times), n)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	// 20/s is a slot every 50 ms: 500 ms from the first slot to the last.
	// The first request may leave a little after its slot, hence the margin;
	// unlimited, all would arrive within a few milliseconds.
	if span, want := times[n-1].Sub(times[0]), time.Duration(n-2)*50*time.Millisecond; span < want {
		t.Errorf("%d requests within %v, want them spread over at least %v", n, span, want)
	}
}
