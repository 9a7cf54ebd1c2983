package standalone_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestRestartKeepsConfigurationAndDeliveryGoesOn stops the whole system —
// services and the NATS server, which restarts on its store directory — while
// a delivery is still failing, and starts it again: tenants, keys and
// endpoints are still there, the pending delivery arrives, and new events flow.
func TestRestartKeepsConfigurationAndDeliveryGoesOn(t *testing.T) {
	redis := testenv.StartRedis(t)
	dataDir := t.TempDir()
	recv := newReceiver(t)

	sys := startSystem(t, sysOptions{dataDir: dataDir, redisURL: redis.URL()})
	a := sys.createTenant(t, "tenant-a")
	ep := sys.createEndpoint(t, a, map[string]any{"url": recv.url("a"), "description": "kept across restarts"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first, err := pulseclient.New(sys.nc(t)).Publish(ctx, pulseclient.PublishInput{TenantID: a.ID, EventType: "job.completed", Data: jobData("job.completed", "job_1")})
	if err != nil {
		t.Fatalf("Publish before restart: %v", err)
	}
	recv.waitCount(t, "a", 1)

	// The endpoint starts failing; an event accepted now is still pending when
	// everything stops.
	recv.setStatus(http.StatusInternalServerError)
	pending, err := pulseclient.New(sys.nc(t)).Publish(ctx, pulseclient.PublishInput{TenantID: a.ID, EventType: "job.failed", Data: jobData("job.failed", "job_2")})
	if err != nil {
		t.Fatalf("Publish of the pending event: %v", err)
	}
	recv.waitCount(t, "a", 2) // the failed attempt
	sys.stop()
	recv.setStatus(http.StatusOK)

	sys = startSystem(t, sysOptions{dataDir: dataDir, redisURL: redis.URL()})
	var list struct {
		Data []struct {
			ID          string `json:"id"`
			Description string `json:"description"`
		} `json:"data"`
	}
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints", map[string]string{"x-api-key": a.Key}, nil, &list); code != http.StatusOK {
		t.Fatalf("list endpoints after restart with the old key: status %d", code)
	}
	if len(list.Data) != 1 || list.Data[0].ID != ep.ID || list.Data[0].Description != "kept across restarts" {
		t.Fatalf("endpoints after restart = %+v, want the one endpoint %s", list.Data, ep.ID)
	}

	// The pending delivery is retried and succeeds after the restart.
	var delivered received
	testenv.WaitFor(t, 30*time.Second, func() error {
		for _, r := range recv.requests("a") {
			if r.Header.Get("webhook-id") == pending.MessageID && r.Status == http.StatusOK {
				delivered = r
				return nil
			}
		}
		return errNotYet("the pending event was not delivered after the restart")
	})
	verify(t, ep.Secret, delivered)

	third, err := pulseclient.New(sys.nc(t)).Publish(ctx, pulseclient.PublishInput{TenantID: a.ID, EventType: "job.completed", Data: jobData("job.completed", "job_3")})
	if err != nil {
		t.Fatalf("Publish after restart: %v", err)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		for _, r := range recv.requests("a") {
			if r.Header.Get("webhook-id") == third.MessageID {
				return nil
			}
		}
		return errNotYet("the event published after the restart has not arrived")
	})
	settled(t, sys.js(t))
	counts := map[string]int{}
	for _, r := range recv.requests("a") {
		counts[r.Header.Get("webhook-id")]++
	}
	if counts[first.MessageID] != 1 {
		t.Errorf("the event delivered before the restart arrived %d times, want 1", counts[first.MessageID])
	}
	if counts[third.MessageID] != 1 {
		t.Errorf("the event published after the restart arrived %d times, want 1", counts[third.MessageID])
	}
}

type errNotYet string

func (e errNotYet) Error() string { return string(e) }
