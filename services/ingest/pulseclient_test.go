package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// clientFor returns a pulseclient on its own connection, so the requests it
// sent can be counted, with short timeouts for the tests.
func (h *harness) clientFor() (*pulseclient.Client, func() uint64) {
	nc := h.nats.Conn(h.t)
	c := pulseclient.New(nc, pulseclient.WithAttemptTimeout(2*time.Second), pulseclient.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	return c, func() uint64 { return nc.Stats().OutMsgs }
}

// publishAsync publishes in the background and returns the outcome channel.
func publishAsync(c *pulseclient.Client, in pulseclient.PublishInput) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := c.Publish(ctx, in)
		if err == nil && !ids.Valid(ids.Message, res.MessageID) {
			err = fmt.Errorf("message id %q, want a msg_ id", res.MessageID)
		}
		done <- err
	}()
	return done
}

// waitAttempts waits until a client sent at least n requests.
func waitAttempts(t *testing.T, sent func() uint64, n uint64) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if got := sent(); got < n {
			return fmt.Errorf("client sent %d requests, want at least %d", got, n)
		}
		return nil
	})
}

func TestPulseclientRetriesUntilIngestStarts(t *testing.T) {
	h := newHarness(t, options{late: true})
	c, sent := h.clientFor()

	done := publishAsync(c, pulseclient.PublishInput{TenantID: tenantA, EventType: "job.created", Data: map[string]string{"job_id": "j1"}})
	waitAttempts(t, sent, 3) // no responders: ingest is not running yet
	h.start(options{})

	if err := <-done; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := h.eventCount(); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", got)
	}
}

func TestPulseclientRetriesWhileStreamUnavailable(t *testing.T) {
	h := newHarness(t, options{})
	if err := h.js.DeleteStream(context.Background(), streams.Events); err != nil {
		t.Fatalf("delete stream: %v", err)
	}
	c, sent := h.clientFor()

	done := publishAsync(c, pulseclient.PublishInput{TenantID: tenantA, EventType: "job.failed", Data: map[string]string{"job_id": "j1"}})
	waitAttempts(t, sent, 2) // each answered 503
	if _, err := streams.EnsureEvents(context.Background(), h.js, streams.Options{}); err != nil {
		t.Fatalf("recreate stream: %v", err)
	}

	if err := <-done; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := h.eventCount(); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1: retries of one publish are stored once", got)
	}
}

func TestPulseclientTypedErrors(t *testing.T) {
	h := newHarness(t, options{})
	tests := []struct {
		name string
		in   pulseclient.PublishInput
		want pulseclient.Error
	}{
		{"unknown event type", pulseclient.PublishInput{TenantID: tenantA, EventType: "job.exploded", Data: map[string]int{}}, pulseclient.Error{Status: 422, Code: pulseclient.CodeUnknownEventType}},
		{"unknown tenant", pulseclient.PublishInput{TenantID: "ten_nobody", EventType: "job.created", Data: map[string]int{}}, pulseclient.Error{Status: 422, Code: pulseclient.CodeUnknownTenant}},
		{"data not an object", pulseclient.PublishInput{TenantID: tenantA, EventType: "job.created", Data: []int{1}}, pulseclient.Error{Status: 400, Code: pulseclient.CodeInvalidData}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sent := h.clientFor()

			_, err := c.Publish(context.Background(), tt.in)

			var e *pulseclient.Error
			if !errors.As(err, &e) {
				t.Fatalf("Publish error = %v, want a *pulseclient.Error", err)
			}
			if e.Status != tt.want.Status || e.Code != tt.want.Code || e.Message == "" {
				t.Errorf("error = %+v, want status %d code %s with a message", *e, tt.want.Status, tt.want.Code)
			}
			if got := sent(); got != 1 {
				t.Errorf("client sent %d requests, want 1: the error is final", got)
			}
		})
	}
	if got := h.eventCount(); got != 0 {
		t.Errorf("EVENTS holds %d messages, want 0", got)
	}
}

// lossyProxy forwards requests on subject to ingest and drops the first
// drop replies, as a network that loses them would: ingest has handled the
// request, but the publisher never hears so and retries.
func (h *harness) lossyProxy(subject string, drop int) func() int {
	h.t.Helper()
	nc := h.nats.Conn(h.t)
	var (
		mu       sync.Mutex
		received int
	)
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		mu.Lock()
		received++
		n := received
		mu.Unlock()
		reply, err := nc.RequestMsg(&nats.Msg{Subject: streams.IngestSubject, Data: m.Data, Header: m.Header}, 5*time.Second)
		if err != nil || n <= drop {
			return
		}
		_ = m.RespondMsg(&nats.Msg{Data: reply.Data, Header: reply.Header})
	})
	if err != nil {
		h.t.Fatalf("subscribe %s: %v", subject, err)
	}
	h.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return received
	}
}

func TestPulseclientRetryAfterLostReplyIsStoredOnce(t *testing.T) {
	tests := []struct {
		name string
		key  string
	}{
		{"generated key", ""},
		{"caller's key", "job_7/completed"},
	}
	h := newHarness(t, options{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := fmt.Sprintf("test.lossy.%d", i)
			received := h.lossyProxy(subject, 1)
			c := pulseclient.New(h.nats.Conn(t), pulseclient.WithSubject(subject),
				pulseclient.WithAttemptTimeout(500*time.Millisecond), pulseclient.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
			before := h.eventCount()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			res, err := c.Publish(ctx, pulseclient.PublishInput{TenantID: tenantA, EventType: "job.completed", Data: map[string]string{"job_id": "j7"}, IdempotencyKey: tt.key})

			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if got := received(); got != 2 {
				t.Errorf("ingest got %d requests, want 2: the first reply was lost", got)
			}
			if !res.Duplicate {
				t.Errorf("result = %+v, want Duplicate: the retry found the first attempt's key", res)
			}
			if got := h.eventCount() - before; got != 1 {
				t.Errorf("EVENTS gained %d messages, want 1: a retried publish is stored once", got)
			}
		})
	}
}
