package delivery

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// resend publishes d again with resendID, the way the config service's
// resend route does (Nats-Msg-Id <msg>.<endpoint>.<resend id>, attempt 0).
func (e *env) resend(t *testing.T, d *eventv1.Delivery, resendID string) {
	t.Helper()
	r := proto.Clone(d).(*eventv1.Delivery)
	r.ResendId = resendID
	r.Attempt, r.ScheduleCount, r.RateReserved = 0, 0, false
	data, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	id := streams.DeliveryMsgID(d.GetMessageId(), d.GetEndpointId()) + "." + resendID
	if _, err := e.js.Publish(context.Background(), streams.DeliverySubject(d.GetEndpointId(), 1), data, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

// attemptSummary is "#<attempt> <state>" for each attempt, in order.
func attemptSummary(attempts []*eventv1.Attempt) []string {
	var out []string
	for _, a := range attempts {
		out = append(out, fmt.Sprintf("#%d %v", a.Attempt, a.State))
	}
	return out
}

// TestResendRetryIsNotDroppedAsDuplicate: a resend whose first attempt fails
// is retried, although the original delivery's retry at the same attempt
// number returned from the schedule moments before (well within the
// DELIVERIES duplicate window). Both returns used to get the Nats-Msg-Id
// <msg>.<endpoint>.1.1, so the stream dropped the resend's retry as a
// duplicate and the scheduler marked it done: lost without a trace.
func TestResendRetryIsNotDroppedAsDuplicate(t *testing.T) {
	e := newEnv(t)
	s := newSink(t)
	// The original's first attempt fails and its retry succeeds; then the
	// resend's first attempt fails and its retry succeeds.
	s.setAnswer(func(_ string, n int) (int, http.Header) {
		if n == 1 || n == 3 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)
	e.attemptsOf(t, d.MessageId, 2)
	e.waitSettled(t, 1)

	e.resend(t, d, "rsnd_1")
	attempts := e.attemptsOf(t, d.MessageId, 4)
	e.waitSettled(t, 1)
	got := attemptSummary(attempts)
	want := []string{"#1 DELIVERY_STATE_RETRYING", "#2 DELIVERY_STATE_SUCCEEDED", "#1 DELIVERY_STATE_RETRYING", "#2 DELIVERY_STATE_SUCCEEDED"}
	if !slices.Equal(got, want) {
		t.Errorf("attempts = %v, want %v", got, want)
	}
	if n, ok := s.counts(); n != 4 || ok != 2 {
		t.Errorf("endpoint got %d requests (%d answered 2xx), want 4 (2)", n, ok)
	}
}

// TestResendAndOriginalRetriesAreSeparateScheduleItems: the original
// delivery waits in the schedule for its second attempt when a resend of it
// fails its first attempt (on a worker that does not know the endpoint is
// failing: the partition moved). Both retries must be kept: they used to be
// the same sorted-set member (sequence, endpoint, attempt 1, hops 1), so the
// resend's ZADD only moved the original's item and one retry was lost.
func TestResendAndOriginalRetriesAreSeparateScheduleItems(t *testing.T) {
	e := newEnv(t)
	s := newSink(t)
	s.setAnswer(func(_ string, n int) (int, http.Header) {
		if n <= 2 { // the original's first attempt, then the resend's
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.Schedule = []time.Duration{0, 3 * time.Second}
	cfg.Jitter = -1
	w1 := e.startWorker(t, cfg, workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)
	e.attemptsOf(t, d.MessageId, 1)
	testenv.WaitFor(t, waitTimeout, func() error {
		if n := e.scheduleLen(t, 1); n != 1 {
			return fmt.Errorf("retry schedule holds %d items, want the original's retry", n)
		}
		return nil
	})
	w1.stop(t) // releases its pin: the next worker takes the partition at once
	e.startWorker(t, cfg, workerOptions{})

	e.resend(t, d, "rsnd_1")
	e.attemptsOf(t, d.MessageId, 2)
	testenv.WaitFor(t, waitTimeout, func() error {
		if n := e.scheduleLen(t, 1); n != 2 {
			return fmt.Errorf("retry schedule holds %d items, want 2: the original's retry and the resend's", n)
		}
		return nil
	})
	attempts := e.attemptsOf(t, d.MessageId, 4)
	e.waitSettled(t, 1)
	got := attemptSummary(attempts)
	want := []string{"#1 DELIVERY_STATE_RETRYING", "#1 DELIVERY_STATE_RETRYING", "#2 DELIVERY_STATE_SUCCEEDED", "#2 DELIVERY_STATE_SUCCEEDED"}
	if !slices.Equal(got, want) {
		t.Errorf("attempts = %v, want %v", got, want)
	}
	if n, _ := s.counts(); n != 4 {
		t.Errorf("endpoint got %d requests, want 4", n)
	}
}

// TestPutOffResendIsStillSent: a resend that is put off before its first
// attempt (here because its endpoint is failing) comes back from the
// schedule as the resend it is, and is sent although the message was
// delivered before. It used to come back as an ordinary delivery, which the
// record of the earlier success stopped: the resend was acked unsent.
func TestPutOffResendIsStillSent(t *testing.T) {
	e := newEnv(t)
	s := newSink(t)
	ep := newEndpoint(t, s.srv.URL)
	a, b := newDelivery(ep), newDelivery(ep)
	s.setAnswer(func(id string, n int) (int, http.Header) {
		if id == b.MessageId && n == 1 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	e.config.put(ep)
	cfg := testConfig()
	cfg.Schedule = []time.Duration{0, time.Second}
	cfg.Jitter = -1
	e.startWorker(t, cfg, workerOptions{})
	e.publish(context.Background(), t, a)
	s.waitSucceeded(t, []string{a.MessageId})
	e.waitSettled(t, 1)

	// b fails: the endpoint is failing until b's retry, a second from now,
	// so the resend of a is put off until then.
	e.publish(context.Background(), t, b)
	e.attemptsOf(t, b.MessageId, 1)
	testenv.WaitFor(t, waitTimeout, func() error {
		if n := e.scheduleLen(t, 1); n != 1 {
			return fmt.Errorf("retry schedule holds %d items, want b's retry", n)
		}
		return nil
	})
	e.resend(t, a, "rsnd_1")
	testenv.WaitFor(t, waitTimeout, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if n := s.okByID[a.MessageId]; n != 2 {
			return fmt.Errorf("message a delivered %d times, want 2 (the original and the resend)", n)
		}
		return nil
	})
	s.waitSucceeded(t, []string{b.MessageId})
	e.waitSettled(t, 1)
	if got := attemptSummary(e.attemptsOf(t, a.MessageId, 2)); !slices.Equal(got, []string{"#1 DELIVERY_STATE_SUCCEEDED", "#1 DELIVERY_STATE_SUCCEEDED"}) {
		t.Errorf("attempts of a = %v, want two successful first attempts", got)
	}
}
