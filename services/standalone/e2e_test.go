package standalone_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// webhookBody is the JSON body endpoints receive.
type webhookBody struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// TestJobEventReachesExactlyTheSubscribedEndpoints is the core promise: a
// processor publishes job.completed over NATS and every endpoint of that
// tenant subscribed to it gets one signed POST, and nobody else gets anything.
func TestJobEventReachesExactlyTheSubscribedEndpoints(t *testing.T) {
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL()})
	recv := newReceiver(t)
	a := sys.createTenant(t, "tenant-a")
	b := sys.createTenant(t, "tenant-b")
	aCompleted := sys.createEndpoint(t, a, map[string]any{"url": recv.url("a-completed"), "event_types": []string{"job.completed"}})
	aAll := sys.createEndpoint(t, a, map[string]any{"url": recv.url("a-all")})
	sys.createEndpoint(t, a, map[string]any{"url": recv.url("a-failed"), "event_types": []string{"job.failed"}})
	sys.createEndpoint(t, b, map[string]any{"url": recv.url("b-all")})
	sys.createEndpoint(t, b, map[string]any{"url": recv.url("b-completed"), "event_types": []string{"job.completed"}})

	client := pulseclient.New(sys.nc(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := client.Publish(ctx, pulseclient.PublishInput{
		TenantID:  a.ID,
		EventType: "job.completed",
		Data:      jobData("job.completed", "job_42"),
	})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if !strings.HasPrefix(res.MessageID, "msg_") || res.Duplicate {
		t.Fatalf("Publish result = %+v, want a new msg_ id", res)
	}

	for _, ep := range []struct {
		name   string
		secret string
	}{{"a-completed", aCompleted.Secret}, {"a-all", aAll.Secret}} {
		got := recv.waitCount(t, ep.name, 1)[0]
		verify(t, ep.secret, got)
		if id := got.Header.Get("webhook-id"); id != res.MessageID {
			t.Errorf("%s: webhook-id = %q, want %q", ep.name, id, res.MessageID)
		}
		var body webhookBody
		if err := json.Unmarshal(got.Body, &body); err != nil {
			t.Fatalf("%s: body %q is not JSON: %v", ep.name, got.Body, err)
		}
		if body.Type != "job.completed" {
			t.Errorf("%s: type = %q, want job.completed", ep.name, body.Type)
		}
		if _, err := time.Parse(time.RFC3339, body.Timestamp); err != nil {
			t.Errorf("%s: timestamp %q is not RFC 3339: %v", ep.name, body.Timestamp, err)
		}
		var data map[string]any
		if err := json.Unmarshal(body.Data, &data); err != nil || data["job_id"] != "job_42" {
			t.Errorf("%s: data = %s, want job_id job_42", ep.name, body.Data)
		}
		if ct := got.Header.Get("content-type"); ct != "application/json" {
			t.Errorf("%s: content-type = %q, want application/json", ep.name, ct)
		}
		if ua := got.Header.Get("user-agent"); !strings.HasPrefix(ua, "pulsehooks/") {
			t.Errorf("%s: user-agent = %q, want pulsehooks/…", ep.name, ua)
		}
	}
	settled(t, sys.js(t))
	for name, want := range map[string]int{"a-completed": 1, "a-all": 1, "a-failed": 0, "b-all": 0, "b-completed": 0} {
		if got := len(recv.requests(name)); got != want {
			t.Errorf("endpoint %s received %d requests, want %d", name, got, want)
		}
	}
}

// TestIdempotencyKeyDeliversOnce publishes the same event twice with one key.
func TestIdempotencyKeyDeliversOnce(t *testing.T) {
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL()})
	recv := newReceiver(t)
	a := sys.createTenant(t, "tenant-a")
	sys.createEndpoint(t, a, map[string]any{"url": recv.url("a")})
	client := pulseclient.New(sys.nc(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := pulseclient.PublishInput{TenantID: a.ID, EventType: "job.created", Data: jobData("job.created", "job_7"), IdempotencyKey: "job_7-created"}
	first, err := client.Publish(ctx, in)
	if err != nil {
		t.Fatalf("first Publish: %v", err)
	}
	second, err := client.Publish(ctx, in)
	if err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	if second.MessageID != first.MessageID || !second.Duplicate {
		t.Errorf("second Publish = %+v, want message id %s with duplicate=true", second, first.MessageID)
	}
	// The same key over HTTP is the same event too.
	code, out := sys.publishHTTP(t, map[string]any{"tenant_id": a.ID, "event_type": "job.created", "data": jobData("job.created", "job_7"), "idempotency_key": "job_7-created"})
	if code != http.StatusAccepted || out["message_id"] != first.MessageID {
		t.Errorf("HTTP publish with the same key = %d %v, want 202 with message id %s", code, out, first.MessageID)
	}
	recv.waitCount(t, "a", 1)
	js := sys.js(t)
	settled(t, js)
	if got := len(recv.requests("a")); got != 1 {
		t.Errorf("endpoint received %d requests, want 1", got)
	}
	if got := streamMsgs(t, js, streams.Events); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", got)
	}
}

// TestBadInputIsRefusedAndStoresNothing sends each kind of bad event.
func TestBadInputIsRefusedAndStoresNothing(t *testing.T) {
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL()})
	recv := newReceiver(t)
	a := sys.createTenant(t, "tenant-a")
	sys.createEndpoint(t, a, map[string]any{"url": recv.url("a")})
	big := `{"tenant_id":"tenant-a","event_type":"job.completed","data":{"blob":"` + strings.Repeat("x", 300<<10) + `"}}`
	for _, tc := range []struct {
		name     string
		body     any
		wantCode int
		wantText string
	}{
		{"unknown event type", map[string]any{"tenant_id": a.ID, "event_type": "job.exploded", "data": map[string]any{"job_id": "j"}}, http.StatusUnprocessableEntity, "job.exploded"},
		{"malformed JSON", `{"tenant_id": "tenant-a", "event_type": `, http.StatusBadRequest, ""},
		{"300 KiB body", big, http.StatusRequestEntityTooLarge, ""},
		{"data not an object", map[string]any{"tenant_id": a.ID, "event_type": "job.completed", "data": []int{1, 2}}, http.StatusBadRequest, "object"},
		{"unknown tenant", map[string]any{"tenant_id": "nobody", "event_type": "job.completed", "data": map[string]any{}}, http.StatusUnprocessableEntity, "nobody"},
		{"data against its schema", map[string]any{"tenant_id": a.ID, "event_type": "job.completed", "data": map[string]any{"job_id": "job_1", "status": "completed"}}, http.StatusUnprocessableEntity, "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := sys.publishHTTP(t, tc.body)
			if code != tc.wantCode {
				t.Fatalf("status = %d (%v), want %d", code, out, tc.wantCode)
			}
			e, _ := out["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if e["code"] == nil || msg == "" || !strings.Contains(msg, tc.wantText) {
				t.Errorf("error body = %v, want a code and a message mentioning %q", out, tc.wantText)
			}
		})
	}
	// The same refusals over NATS.
	client := pulseclient.New(sys.nc(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := client.Publish(ctx, pulseclient.PublishInput{TenantID: a.ID, EventType: "job.exploded", Data: map[string]any{}})
	var perr *pulseclient.Error
	if !errors.As(err, &perr) || perr.Status != http.StatusUnprocessableEntity {
		t.Errorf("NATS publish of an unknown type: err = %v, want a 422 *pulseclient.Error", err)
	}
	_, err = client.Publish(ctx, pulseclient.PublishInput{TenantID: a.ID, EventType: "job.completed", Data: json.RawMessage(`{"blob":"` + strings.Repeat("x", 300<<10) + `"}`)})
	if !errors.As(err, &perr) || perr.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("NATS publish of 300 KiB: err = %v, want a 413 *pulseclient.Error", err)
	}
	js := sys.js(t)
	settled(t, js)
	if got := streamMsgs(t, js, streams.Events); got != 0 {
		t.Errorf("EVENTS holds %d messages after bad input, want 0", got)
	}
	if got := len(recv.requests("a")); got != 0 {
		t.Errorf("endpoint received %d requests after bad input, want 0", got)
	}
}

// TestTenantKeyCannotPublish: job events come from Pulse's systems only.
func TestTenantKeyCannotPublish(t *testing.T) {
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL()})
	a := sys.createTenant(t, "tenant-a")
	body := map[string]any{"tenant_id": a.ID, "event_type": "job.completed", "data": jobData("job.completed", "job_1")}
	for _, h := range []map[string]string{
		{"x-api-key": a.Key},
		{"authorization": "Bearer " + a.Key},
		{},
	} {
		var out map[string]any
		code := call(t, "POST", sys.svc.IngestURL()+"/v1/events", h, body, &out)
		if code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("publish with %v: status %d (%v), want 401 or 403", h, code, out)
		}
	}
	if got := streamMsgs(t, sys.js(t), streams.Events); got != 0 {
		t.Errorf("EVENTS holds %d messages, want 0", got)
	}
}
