package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

func TestIdempotencySequential(t *testing.T) {
	h := newHarness(t, options{})
	req := func(tenant, key string) *eventv1.PublishRequest {
		return &eventv1.PublishRequest{TenantId: tenant, EventType: "job.completed", Data: []byte(`{"job_id":"j1"}`), IdempotencyKey: key}
	}

	first := h.mustPublish(req(tenantA, "job_1/completed"))
	again := h.mustPublish(req(tenantA, "job_1/completed"))
	otherTenant := h.mustPublish(req(tenantB, "job_1/completed"))
	otherKey := h.mustPublish(req(tenantA, "job_2/completed"))

	if first.GetDuplicate() {
		t.Error("first publish: duplicate = true, want false")
	}
	if again.GetMessageId() != first.GetMessageId() || !again.GetDuplicate() {
		t.Errorf("repeat = {%s %v}, want {%s true}", again.GetMessageId(), again.GetDuplicate(), first.GetMessageId())
	}
	if otherTenant.GetMessageId() == first.GetMessageId() || otherTenant.GetDuplicate() {
		t.Errorf("same key, other tenant = {%s %v}, want a new message", otherTenant.GetMessageId(), otherTenant.GetDuplicate())
	}
	if otherKey.GetMessageId() == first.GetMessageId() || otherKey.GetDuplicate() {
		t.Errorf("other key = {%s %v}, want a new message", otherKey.GetMessageId(), otherKey.GetDuplicate())
	}
	if got := h.eventCount(); got != 3 {
		t.Errorf("EVENTS holds %d messages, want 3", got)
	}
	if raw, _ := h.storedEvent(streams.EventSubject(tenantB, "job.completed")); raw.Header.Get(streams.RedoHeader) != "" {
		t.Errorf("first publish of a key marked as a redo (%s: %q)", streams.RedoHeader, raw.Header.Get(streams.RedoHeader))
	}

	// The HTTP path shares the keys: the header form of the same key.
	status, _, body := h.post(`{"tenant_id":"ten_acme","event_type":"job.completed","data":{"job_id":"j1"}}`,
		map[string]string{"Idempotency-Key": "job_1/completed"})
	var reply publishReply
	if err := json.Unmarshal(body, &reply); err != nil || status != http.StatusAccepted {
		t.Fatalf("POST = %d %s, want 202", status, body)
	}
	if reply.MessageID != first.GetMessageId() || !reply.Duplicate {
		t.Errorf("HTTP repeat = %+v, want {%s true}", reply, first.GetMessageId())
	}
	if got := h.eventCount(); got != 3 {
		t.Errorf("EVENTS holds %d messages after the HTTP repeat, want 3", got)
	}
}

func TestIdempotencyConcurrent(t *testing.T) {
	h := newHarness(t, options{})
	const n = 10
	type answer struct {
		id  string
		dup bool
		err error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			// Half over NATS, half over HTTP: both share one key space.
			if i%2 == 0 {
				req, _ := json.Marshal(map[string]any{"tenant_id": tenantA, "event_type": "job.created", "data": map[string]int{"n": i}, "idempotency_key": "shared"})
				status, _, body, err := h.tryPost(string(req), nil)
				var r publishReply
				if err != nil || status != http.StatusAccepted || json.Unmarshal(body, &r) != nil {
					answers[i].err = fmt.Errorf("POST = %d %s: %v", status, body, err)
					return
				}
				answers[i] = answer{id: r.MessageID, dup: r.Duplicate}
				return
			}
			reply, err := h.publish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: fmt.Appendf(nil, `{"n":%d}`, i), IdempotencyKey: "shared"}, nil)
			if err != nil {
				answers[i].err = err
				return
			}
			if status, body, failed, err := decodeServiceError(reply); err != nil || failed {
				answers[i].err = fmt.Errorf("publish answered %s %v: %v", status, body, err)
				return
			}
			var r eventv1.PublishResponse
			if err := protoUnmarshalReply(reply.Data, &r); err != nil {
				answers[i].err = err
				return
			}
			answers[i] = answer{id: r.GetMessageId(), dup: r.GetDuplicate()}
		})
	}
	close(start)
	wg.Wait()

	seen := map[string]bool{}
	fresh := 0
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("publish %d: %v", i, a.err)
		}
		seen[a.id] = true
		if !a.dup {
			fresh++
		}
	}
	if len(seen) != 1 {
		t.Errorf("message ids = %v, want one", seen)
	}
	if fresh != 1 {
		t.Errorf("%d answers with duplicate=false, want exactly 1", fresh)
	}
	if got := h.eventCount(); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", got)
	}
}

// A publisher that crashed after claiming a key but before publishing left
// a pending record: the retry publishes that message id, with the first
// attempt's timestamp.
func TestIdempotencyPendingRecordIsPublished(t *testing.T) {
	h := newHarness(t, options{})
	claimed := ids.New(ids.Message)
	ts := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	h.putRecord(tenantA, "crashed", idemRecord{MessageID: claimed, State: statePending, TimestampMS: ts.UnixMilli()})

	resp := h.mustPublish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.failed", Data: []byte(`{}`), IdempotencyKey: "crashed"})

	if resp.GetMessageId() != claimed || resp.GetDuplicate() {
		t.Errorf("reply = {%s %v}, want {%s false}: the event had not been stored", resp.GetMessageId(), resp.GetDuplicate(), claimed)
	}
	raw, ev := h.storedEvent(streams.EventSubject(tenantA, "job.failed"))
	if ev.GetMessageId() != claimed || !ev.GetTimestamp().AsTime().Equal(ts) {
		t.Errorf("stored {%s %v}, want {%s %v}", ev.GetMessageId(), ev.GetTimestamp().AsTime(), claimed, ts)
	}
	// It may repeat an event stored before the duplicate window: marked, so
	// that delivery checks its deliveries against completed ones.
	if got := raw.Header.Get(streams.RedoHeader); got != "1" {
		t.Errorf("%s header = %q, want \"1\" on a key published again", streams.RedoHeader, got)
	}
	// The done mark is published without waiting for its ack: it lands
	// just after the reply.
	testenv.WaitFor(t, 10*time.Second, func() error {
		if rec := h.getRecord(tenantA, "crashed"); rec.State != stateDone {
			return fmt.Errorf("record state = %q, want %q", rec.State, stateDone)
		}
		return nil
	})
}

// A publisher that crashed after publishing but before marking the record
// done left a pending record for a stored event: the retry stores nothing.
func TestIdempotencyPendingRecordOfStoredEvent(t *testing.T) {
	h := newHarness(t, options{})
	req := &eventv1.PublishRequest{TenantId: tenantA, EventType: "job.failed", Data: []byte(`{}`), IdempotencyKey: "half-done"}
	first := h.mustPublish(req)
	rec := h.getRecord(tenantA, "half-done")
	rec.State = statePending
	h.putRecord(tenantA, "half-done", rec)

	again := h.mustPublish(req)

	if again.GetMessageId() != first.GetMessageId() || !again.GetDuplicate() {
		t.Errorf("retry = {%s %v}, want {%s true}", again.GetMessageId(), again.GetDuplicate(), first.GetMessageId())
	}
	if got := h.eventCount(); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", got)
	}
}

// A record ingest did not write is an internal error, not a 503 that
// publishers would retry until it expires.
func TestIdempotencyCorruptRecord(t *testing.T) {
	h := newHarness(t, options{})
	kv, err := h.js.KeyValue(context.Background(), IdempotencyBucket)
	if err != nil {
		t.Fatalf("open bucket: %v", err)
	}
	if _, err := kv.Put(context.Background(), idemKey(tenantA, "garbled"), []byte("not json")); err != nil {
		t.Fatalf("put: %v", err)
	}

	reply, err := h.publish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`), IdempotencyKey: "garbled"}, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}

	status, body, failed := serviceError(t, reply)
	if !failed || status != "500" || body.GetCode() != pulseclient.CodeInternal {
		t.Errorf("reply = %s %v, want 500 %s", status, body, pulseclient.CodeInternal)
	}
	if strings.Contains(body.GetMessage(), "not json") {
		t.Errorf("error message %q leaks internals", body.GetMessage())
	}
	if got := h.eventCount(); got != 0 {
		t.Errorf("EVENTS holds %d messages, want 0", got)
	}
}

func TestIdempotencyKeyExpires(t *testing.T) {
	h := newHarness(t, options{configure: func(c *Config) { c.IdempotencyTTL = time.Second }})
	req := &eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`), IdempotencyKey: "short-lived"}
	first := h.mustPublish(req)

	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := h.idemKeys(); n != 0 {
			return fmt.Errorf("bucket holds %d keys", n)
		}
		return nil
	})
	later := h.mustPublish(req)

	if later.GetMessageId() == first.GetMessageId() || later.GetDuplicate() {
		t.Errorf("publish after expiry = {%s %v}, want a new message", later.GetMessageId(), later.GetDuplicate())
	}
	if got := h.eventCount(); got != 2 {
		t.Errorf("EVENTS holds %d messages, want 2", got)
	}
}

func TestIdemKey(t *testing.T) {
	long := strings.Repeat("k", 256)
	tests := []struct {
		tenant, key string
		wantPrefix  string
	}{
		{tenant: "ten_01JB3K8N2Z6Q4W9X0R5T7V1C3M", key: "job_1/completed", wantPrefix: "ten_01JB3K8N2Z6Q4W9X0R5T7V1C3M."},
		{tenant: "acme-corp", key: long, wantPrefix: "acme-corp."},
		{tenant: "acme:eu", key: "k", wantPrefix: "=61636d653a6575."},
		{tenant: "=61", key: "k", wantPrefix: "=3d3631."},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := idemKey(tt.tenant, tt.key)
		if !strings.HasPrefix(got, tt.wantPrefix) || len(got) != len(tt.wantPrefix)+64 {
			t.Errorf("idemKey(%q, %.10q) = %q, want %s + 64 hex digits", tt.tenant, tt.key, got, tt.wantPrefix)
		}
		if i := strings.IndexFunc(got, notKeyChar); i >= 0 {
			t.Errorf("idemKey(%q, …) = %q holds %q, not allowed in bucket keys", tt.tenant, got, got[i])
		}
		if seen[got] {
			t.Errorf("idemKey(%q, …) = %q collides", tt.tenant, got)
		}
		seen[got] = true
	}
}

// putRecord writes an idempotency record directly into the bucket.
func (h *harness) putRecord(tenant, key string, rec idemRecord) {
	h.t.Helper()
	kv, err := h.js.KeyValue(context.Background(), IdempotencyBucket)
	if err != nil {
		h.t.Fatalf("open bucket: %v", err)
	}
	b, _ := json.Marshal(rec)
	if _, err := kv.Put(context.Background(), idemKey(tenant, key), b); err != nil {
		h.t.Fatalf("put record: %v", err)
	}
}

// getRecord reads an idempotency record from the bucket.
func (h *harness) getRecord(tenant, key string) idemRecord {
	h.t.Helper()
	kv, err := h.js.KeyValue(context.Background(), IdempotencyBucket)
	if err != nil {
		h.t.Fatalf("open bucket: %v", err)
	}
	e, err := kv.Get(context.Background(), idemKey(tenant, key))
	if err != nil {
		h.t.Fatalf("get record: %v", err)
	}
	var rec idemRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		h.t.Fatalf("decode record %s: %v", e.Value(), err)
	}
	return rec
}

// notKeyChar reports whether r is not allowed in KV bucket keys.
func notKeyChar(r rune) bool {
	return !plainTenant(string(r)) && !strings.ContainsRune("=.", r)
}
