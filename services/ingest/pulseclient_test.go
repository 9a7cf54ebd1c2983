package ingest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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
