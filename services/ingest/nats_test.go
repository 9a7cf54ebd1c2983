package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

func TestNATSPublishStoresEvent(t *testing.T) {
	h := newHarness(t, options{})
	ts := time.Date(2026, 11, 26, 20, 53, 39, 123_456_789, time.UTC)
	req := &eventv1.PublishRequest{
		TenantId:  tenantA,
		EventType: "job.completed",
		Data:      []byte(" {\n  \"job_id\": \"job_1\",\n  \"pages\": [1, 2],\n  \"note\": \"<ok> & done\"\n}\n"),
		Timestamp: timestamppb.New(ts),
	}
	header := nats.Header{}
	header.Set("traceparent", remoteTraceparent)

	reply, err := h.publish(req, header)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}

	if status, body, failed := serviceError(t, reply); failed {
		t.Fatalf("publish answered %s %v, want success", status, body)
	}
	resp := h.mustDecode(reply)
	if !ids.Valid(ids.Message, resp.GetMessageId()) {
		t.Errorf("message id = %q, want a msg_ id", resp.GetMessageId())
	}
	if resp.GetDuplicate() {
		t.Error("duplicate = true for a first publish, want false")
	}
	subject := streams.EventSubject(tenantA, "job.completed")
	msg, ev := h.storedEvent(subject)
	if got := msg.Subject; got != "events.ten_acme.job.completed" {
		t.Errorf("subject = %q, want events.ten_acme.job.completed", got)
	}
	if got := msg.Header.Get(jetstream.MsgIDHeader); got != resp.GetMessageId() {
		t.Errorf("Nats-Msg-Id = %q, want the message id %q", got, resp.GetMessageId())
	}
	wantPayload := `{"type":"job.completed","timestamp":"2026-11-26T20:53:39.123Z","data":{"job_id":"job_1","pages":[1,2],"note":"<ok> & done"}}`
	if got := string(ev.GetPayload()); got != wantPayload {
		t.Errorf("payload = %s, want %s", got, wantPayload)
	}
	if ev.GetMessageId() != resp.GetMessageId() || ev.GetTenantId() != tenantA || ev.GetEventType() != "job.completed" {
		t.Errorf("event = {%s %s %s}, want {%s %s job.completed}", ev.GetMessageId(), ev.GetTenantId(), ev.GetEventType(), resp.GetMessageId(), tenantA)
	}
	if got, want := ev.GetTimestamp().AsTime(), ts.Truncate(time.Millisecond); !got.Equal(want) {
		t.Errorf("event timestamp = %v, want %v", got, want)
	}
	if got := ev.GetAcceptedAt().AsTime(); time.Since(got) > time.Minute || time.Since(got) < 0 {
		t.Errorf("accepted_at = %v, want about now", got)
	}

	// The stored message continues the publisher's trace, from ingest's
	// producer span.
	parts := strings.Split(msg.Header.Get("traceparent"), "-")
	if len(parts) != 4 || parts[1] != remoteTraceID || parts[2] == remoteSpanID {
		t.Errorf("stored traceparent = %q, want trace %s with ingest's own span id", msg.Header.Get("traceparent"), remoteTraceID)
	}
	span := h.producerSpan()
	if got := span.SpanContext().TraceID().String(); got != remoteTraceID {
		t.Errorf("span trace id = %s, want %s", got, remoteTraceID)
	}
	if got := span.Parent().SpanID().String(); got != remoteSpanID {
		t.Errorf("span parent = %s, want the publisher's span %s", got, remoteSpanID)
	}
	if len(parts) == 4 && span.SpanContext().SpanID().String() != parts[2] {
		t.Errorf("stored traceparent span = %s, want the producer span %s", parts[2], span.SpanContext().SpanID())
	}
	wantAttrs := map[attribute.Key]string{
		attrTenant:    tenantA,
		attrEventType: "job.completed",
		attrMessageID: resp.GetMessageId(),
		// The messaging semantic conventions.
		"messaging.system":           "nats",
		"messaging.operation.type":   "send",
		"messaging.operation.name":   "publish",
		"messaging.destination.name": "events.ten_acme.job.completed",
		"messaging.message.id":       resp.GetMessageId(),
	}
	for _, kv := range span.Attributes() {
		if want, ok := wantAttrs[kv.Key]; ok {
			if kv.Value.AsString() != want {
				t.Errorf("span attribute %s = %q, want %q", kv.Key, kv.Value.AsString(), want)
			}
			delete(wantAttrs, kv.Key)
		}
	}
	if len(wantAttrs) != 0 {
		t.Errorf("span is missing attributes %v", wantAttrs)
	}
}

func TestNATSPublishDefaultsTimestampToNow(t *testing.T) {
	h := newHarness(t, options{})
	before := time.Now().UTC().Truncate(time.Millisecond)

	resp := h.mustPublish(&eventv1.PublishRequest{TenantId: tenantB, EventType: "job.created", Data: []byte(`{}`)})

	after := time.Now().UTC()
	_, ev := h.storedEvent(streams.EventSubject(tenantB, "job.created"))
	got := ev.GetTimestamp().AsTime()
	if got.Before(before) || got.After(after) {
		t.Errorf("timestamp = %v, want between %v and %v", got, before, after)
	}
	want := `{"type":"job.created","timestamp":"` + got.Format(timestampLayout) + `","data":{}}`
	if string(ev.GetPayload()) != want {
		t.Errorf("payload = %s, want %s", ev.GetPayload(), want)
	}
	if ev.GetMessageId() != resp.GetMessageId() {
		t.Errorf("stored message id = %s, want %s", ev.GetMessageId(), resp.GetMessageId())
	}
}

func TestNATSPublishErrors(t *testing.T) {
	h := newHarness(t, options{})
	valid := func(change func(*eventv1.PublishRequest)) *eventv1.PublishRequest {
		r := &eventv1.PublishRequest{TenantId: tenantA, EventType: "job.failed", Data: []byte(`{"job_id":"j"}`), IdempotencyKey: "k-" + t.Name()}
		change(r)
		return r
	}
	tests := []struct {
		name       string
		req        *eventv1.PublishRequest
		raw        []byte
		wantStatus string
		wantCode   string
	}{
		{name: "malformed protobuf", raw: []byte{0xff, 0xff, 0xff}, wantStatus: "400", wantCode: pulseclient.CodeMalformedRequest},
		{name: "missing tenant", req: valid(func(r *eventv1.PublishRequest) { r.TenantId = "" }), wantStatus: "400", wantCode: pulseclient.CodeInvalidField},
		{name: "wildcard tenant", req: valid(func(r *eventv1.PublishRequest) { r.TenantId = "ten_*" }), wantStatus: "400", wantCode: pulseclient.CodeInvalidField},
		{name: "missing event type", req: valid(func(r *eventv1.PublishRequest) { r.EventType = "" }), wantStatus: "400", wantCode: pulseclient.CodeInvalidField},
		{name: "unknown tenant", req: valid(func(r *eventv1.PublishRequest) { r.TenantId = "ten_nobody" }), wantStatus: "422", wantCode: pulseclient.CodeUnknownTenant},
		{name: "unknown event type", req: valid(func(r *eventv1.PublishRequest) { r.EventType = "job.exploded" }), wantStatus: "422", wantCode: pulseclient.CodeUnknownEventType},
		{name: "data against its schema", req: valid(func(r *eventv1.PublishRequest) { r.EventType = "job.cancelled" }), wantStatus: "422", wantCode: pulseclient.CodeSchemaMismatch},
		{name: "data array", req: valid(func(r *eventv1.PublishRequest) { r.Data = []byte(`[1,2]`) }), wantStatus: "400", wantCode: pulseclient.CodeInvalidData},
		{name: "data string", req: valid(func(r *eventv1.PublishRequest) { r.Data = []byte(`"job"`) }), wantStatus: "400", wantCode: pulseclient.CodeInvalidData},
		{name: "data null", req: valid(func(r *eventv1.PublishRequest) { r.Data = []byte(`null`) }), wantStatus: "400", wantCode: pulseclient.CodeInvalidData},
		{name: "data missing", req: valid(func(r *eventv1.PublishRequest) { r.Data = nil }), wantStatus: "400", wantCode: pulseclient.CodeInvalidData},
		{name: "data not JSON", req: valid(func(r *eventv1.PublishRequest) { r.Data = []byte(`{"a":}`) }), wantStatus: "400", wantCode: pulseclient.CodeInvalidData},
		{name: "data two values", req: valid(func(r *eventv1.PublishRequest) { r.Data = []byte(`{} {}`) }), wantStatus: "400", wantCode: pulseclient.CodeInvalidData},
		{name: "data invalid UTF-8", req: valid(func(r *eventv1.PublishRequest) { r.Data = []byte("{\"a\":\"\xff\"}") }), wantStatus: "400", wantCode: pulseclient.CodeInvalidData},
		{name: "data over the limit", req: valid(func(r *eventv1.PublishRequest) { r.Data = bigObject(DefaultMaxDataBytes + 1) }), wantStatus: "413", wantCode: pulseclient.CodePayloadTooLarge},
		{name: "timestamp two years ahead", req: valid(func(r *eventv1.PublishRequest) { r.Timestamp = timestamppb.New(time.Now().AddDate(2, 0, 0)) }), wantStatus: "400", wantCode: pulseclient.CodeInvalidTimestamp},
		{name: "timestamp at the epoch", req: valid(func(r *eventv1.PublishRequest) { r.Timestamp = &timestamppb.Timestamp{} }), wantStatus: "400", wantCode: pulseclient.CodeInvalidTimestamp},
		{name: "timestamp out of range", req: valid(func(r *eventv1.PublishRequest) { r.Timestamp = &timestamppb.Timestamp{Nanos: -1} }), wantStatus: "400", wantCode: pulseclient.CodeInvalidTimestamp},
		{name: "idempotency key too long", req: valid(func(r *eventv1.PublishRequest) { r.IdempotencyKey = strings.Repeat("é", maxIdempotencyKey+1) }), wantStatus: "400", wantCode: pulseclient.CodeInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				reply *nats.Msg
				err   error
			)
			if tt.raw != nil {
				reply, err = h.publishRaw(tt.raw, nil)
			} else {
				reply, err = h.publish(tt.req, nil)
			}
			if err != nil {
				t.Fatalf("publish: %v", err)
			}
			status, body, failed := serviceError(t, reply)
			if !failed {
				t.Fatalf("publish succeeded with %x, want %s %s", reply.Data, tt.wantStatus, tt.wantCode)
			}
			if status != tt.wantStatus || body.GetCode() != tt.wantCode {
				t.Errorf("error = %s %s (%s), want %s %s", status, body.GetCode(), body.GetMessage(), tt.wantStatus, tt.wantCode)
			}
			if body.GetMessage() == "" {
				t.Error("error message is empty, want an explanation")
			}
			if got := h.eventCount(); got != 0 {
				t.Errorf("EVENTS holds %d messages, want 0", got)
			}
			if got := h.idemKeys(); got != 0 {
				t.Errorf("idempotency bucket holds %d keys, want 0", got)
			}
		})
	}
}

func TestNATSPublishStreamUnavailable(t *testing.T) {
	h := newHarness(t, options{})
	if err := h.js.DeleteStream(context.Background(), streams.Events); err != nil {
		t.Fatalf("delete stream: %v", err)
	}

	reply, err := h.publish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`)}, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}

	status, body, failed := serviceError(t, reply)
	if !failed {
		t.Fatalf("publish succeeded without a stream (reply %x), want 503", reply.Data)
	}
	if status != "503" || body.GetCode() != pulseclient.CodeUnavailable {
		t.Errorf("error = %s %s, want 503 %s", status, body.GetCode(), pulseclient.CodeUnavailable)
	}
	if code, body := h.get("/readyz"); code != 503 || !strings.Contains(body, streams.Events) {
		t.Errorf("/readyz = %d %s, want 503 naming the stream", code, body)
	}
	if span := h.producerSpan(); span.Status().Code != codes.Error {
		t.Errorf("span status = %v, want Error", span.Status())
	}
}

// mustDecode decodes a success reply.
func (h *harness) mustDecode(reply *nats.Msg) *eventv1.PublishResponse {
	h.t.Helper()
	var resp eventv1.PublishResponse
	if err := proto.Unmarshal(reply.Data, &resp); err != nil {
		h.t.Fatalf("decode reply: %v", err)
	}
	return &resp
}

// producerSpan returns the one "ingest publish" span recorded.
func (h *harness) producerSpan() spanView {
	h.t.Helper()
	var found []spanView
	for _, s := range h.spans.Ended() {
		if s.Name() == "ingest publish" {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		h.t.Fatalf("%d ingest publish spans recorded, want 1", len(found))
	}
	if found[0].SpanKind() != trace.SpanKindProducer {
		h.t.Errorf("span kind = %v, want producer", found[0].SpanKind())
	}
	return found[0]
}

// bigObject returns a JSON object of exactly n bytes.
func bigObject(n int) []byte {
	const head, tail = `{"x":"`, `"}`
	return []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
}

// Many publishers at once, each rejected: every one gets its own error
// reply and nothing is stored.
func TestNATSConcurrentRejections(t *testing.T) {
	h := newHarness(t, options{})
	const n = 100
	errs := make(chan error, n)
	for i := range n {
		go func() {
			reply, err := h.publish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`[` + strings.Repeat("1,", i) + `1]`)}, nil)
			if err != nil {
				errs <- err
				return
			}
			status, body, failed, err := decodeServiceError(reply)
			switch {
			case err != nil:
				errs <- err
			case !failed || status != "400" || body.GetCode() != pulseclient.CodeInvalidData:
				errs <- fmt.Errorf("reply = %s %v, want 400 %s", status, body, pulseclient.CodeInvalidData)
			default:
				errs <- nil
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := h.eventCount(); got != 0 {
		t.Errorf("EVENTS holds %d messages, want 0", got)
	}
}
