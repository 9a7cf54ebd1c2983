package ingest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

func TestHTTPPublishStoresEvent(t *testing.T) {
	h := newHarness(t, options{})
	body := `{"tenant_id":"ten_acme","event_type":"job.failed","data":{ "job_id" : "job_9", "error": {"code": "ocr_timeout"} },"timestamp":"2026-11-26T21:53:39.5+01:00"}`

	status, _, resp := h.post(body, map[string]string{
		"Content-Type": "application/json; charset=utf-8",
		"traceparent":  remoteTraceparent,
	})

	if status != http.StatusAccepted {
		t.Fatalf("POST = %d %s, want 202", status, resp)
	}
	var got publishReply
	if err := json.Unmarshal(resp, &got); err != nil {
		t.Fatalf("decode reply %s: %v", resp, err)
	}
	if !ids.Valid(ids.Message, got.MessageID) || got.Duplicate {
		t.Errorf("reply = %+v, want a new msg_ id", got)
	}
	msg, ev := h.storedEvent(streams.EventSubject(tenantA, "job.failed"))
	if id := msg.Header.Get(jetstream.MsgIDHeader); id != got.MessageID {
		t.Errorf("Nats-Msg-Id = %q, want %q", id, got.MessageID)
	}
	want := `{"type":"job.failed","timestamp":"2026-11-26T20:53:39.500Z","data":{"job_id":"job_9","error":{"code":"ocr_timeout"}}}`
	if string(ev.GetPayload()) != want {
		t.Errorf("payload = %s, want %s", ev.GetPayload(), want)
	}
	if tp := msg.Header.Get("traceparent"); !strings.Contains(tp, remoteTraceID) {
		t.Errorf("stored traceparent = %q, want trace %s continued from the request", tp, remoteTraceID)
	}
	if span := h.producerSpan(); span.SpanContext().TraceID().String() != remoteTraceID {
		t.Errorf("producer span trace = %s, want %s", span.SpanContext().TraceID(), remoteTraceID)
	}
}

func TestHTTPPublishErrors(t *testing.T) {
	h := newHarness(t, options{})
	const ok = `{"tenant_id":"ten_acme","event_type":"job.created","data":{"job_id":"j"},"idempotency_key":"k1"}`
	bigData := `{"tenant_id":"ten_acme","event_type":"job.created","data":` + string(bigObject(DefaultMaxDataBytes+1)) + `}`
	tests := []struct {
		name       string
		body       string
		headers    map[string]string
		wantStatus int
		wantCode   string
		wantInMsg  string
	}{
		{name: "no token", body: ok, headers: map[string]string{"Authorization": ""}, wantStatus: 401, wantCode: pulseclient.CodeUnauthorized},
		{name: "wrong token", body: ok, headers: map[string]string{"Authorization": "Bearer " + testToken + "x"}, wantStatus: 401, wantCode: pulseclient.CodeUnauthorized},
		{name: "token prefix", body: ok, headers: map[string]string{"Authorization": "Bearer " + testToken[:5]}, wantStatus: 401, wantCode: pulseclient.CodeUnauthorized},
		{name: "basic auth", body: ok, headers: map[string]string{"Authorization": "Basic " + testToken}, wantStatus: 401, wantCode: pulseclient.CodeUnauthorized},
		{name: "tenant api key", body: ok, headers: map[string]string{"Authorization": "", "X-Api-Key": "key_01JB3K8N2Z6Q4W9X0R5T7V1C3M"}, wantStatus: 403, wantCode: pulseclient.CodeForbidden, wantInMsg: "tenant API keys cannot publish"},
		{name: "text/plain", body: ok, headers: map[string]string{"Content-Type": "text/plain"}, wantStatus: 415, wantCode: pulseclient.CodeUnsupportedMediaType},
		{name: "no content type", body: ok, headers: map[string]string{"Content-Type": ""}, wantStatus: 415, wantCode: pulseclient.CodeUnsupportedMediaType},
		{name: "malformed JSON", body: `{"tenant_id":"ten_acme",`, wantStatus: 400, wantCode: pulseclient.CodeMalformedRequest},
		{name: "empty body", body: ``, wantStatus: 400, wantCode: pulseclient.CodeMalformedRequest},
		{name: "unknown field", body: `{"tenant_id":"ten_acme","event_type":"job.created","data":{},"tenant":"x"}`, wantStatus: 400, wantCode: pulseclient.CodeMalformedRequest, wantInMsg: "tenant"},
		{name: "trailing value", body: ok + `{}`, wantStatus: 400, wantCode: pulseclient.CodeMalformedRequest},
		{name: "data array", body: `{"tenant_id":"ten_acme","event_type":"job.created","data":[1]}`, wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "data null", body: `{"tenant_id":"ten_acme","event_type":"job.created","data":null}`, wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "data missing", body: `{"tenant_id":"ten_acme","event_type":"job.created"}`, wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "300 KiB body", body: `{"tenant_id":"ten_acme","event_type":"job.created","data":` + string(bigObject(300<<10)) + `}`, wantStatus: 413, wantCode: pulseclient.CodePayloadTooLarge},
		{name: "data over the limit", body: bigData, wantStatus: 413, wantCode: pulseclient.CodePayloadTooLarge},
		{name: "unknown tenant", body: `{"tenant_id":"ten_nobody","event_type":"job.created","data":{}}`, wantStatus: 422, wantCode: pulseclient.CodeUnknownTenant},
		{name: "unknown event type", body: `{"tenant_id":"ten_acme","event_type":"job.exploded","data":{}}`, wantStatus: 422, wantCode: pulseclient.CodeUnknownEventType},
		{name: "data against its schema", body: `{"tenant_id":"ten_acme","event_type":"job.cancelled","data":{"job_id":"j","error":{"code":7}}}`, wantStatus: 422, wantCode: pulseclient.CodeSchemaMismatch, wantInMsg: `data/error/code`},
		{name: "data missing a required field", body: `{"tenant_id":"ten_acme","event_type":"job.cancelled","data":{"job_id":"j"}}`, wantStatus: 422, wantCode: pulseclient.CodeSchemaMismatch, wantInMsg: `"required"`},
		{name: "bad timestamp", body: `{"tenant_id":"ten_acme","event_type":"job.created","data":{},"timestamp":"yesterday"}`, wantStatus: 400, wantCode: pulseclient.CodeInvalidTimestamp},
		{name: "idempotency keys differ", body: ok, headers: map[string]string{"Idempotency-Key": "k2"}, wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, header, body := h.post(tt.body, tt.headers)

			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %.200s)", status, tt.wantStatus, body)
			}
			if ct := header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			e := httpError(t, body)
			if e.Code != tt.wantCode {
				t.Errorf("error code = %q (%s), want %q", e.Code, e.Message, tt.wantCode)
			}
			if e.Message == "" || !strings.Contains(e.Message, tt.wantInMsg) {
				t.Errorf("error message = %q, want it to contain %q", e.Message, tt.wantInMsg)
			}
			if status == 401 && header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
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

func TestHTTPRoutes(t *testing.T) {
	h := newHarness(t, options{})
	tests := []struct {
		method, path string
		want         int
		wantCode     string // the JSON error code, for errors
	}{
		{http.MethodGet, "/healthz", 200, ""},
		{http.MethodGet, "/readyz", 200, ""},
		{http.MethodGet, "/v1/events", 405, "method_not_allowed"},
		{http.MethodPut, "/v1/events", 405, "method_not_allowed"},
		{http.MethodGet, "/v1/other", 404, "not_found"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, h.url(tt.path), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
		if tt.wantCode == "" {
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type = %q, want application/json", tt.method, tt.path, ct)
		}
		if e := httpError(t, body); e.Code != tt.wantCode || e.Message == "" {
			t.Errorf("%s %s: error = %+v, want code %q and a message", tt.method, tt.path, e, tt.wantCode)
		}
	}
}

func TestHTTPBearerSchemeIsCaseInsensitive(t *testing.T) {
	h := newHarness(t, options{})

	status, _, body := h.post(`{"tenant_id":"ten_acme","event_type":"job.created","data":{}}`,
		map[string]string{"Authorization": "bearer " + testToken})

	if status != http.StatusAccepted {
		t.Errorf("POST with a lower-case scheme = %d %s, want 202", status, body)
	}
}
