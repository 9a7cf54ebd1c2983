package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"
	"unicode/utf8"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// anyCatalog has every tenant and every event type.
type anyCatalog struct{}

func (anyCatalog) Tenant(id string) (*configv1.Tenant, bool) { return &configv1.Tenant{Id: id}, true }
func (anyCatalog) EventType(name string) (*configv1.EventType, bool) {
	return &configv1.EventType{Name: name}, true
}

// FuzzValidate feeds arbitrary publishes to validate and the accepted ones
// to envelope: neither panics, every refusal is a problem, an accepted
// publish has valid tokens, UTF-8 and compact JSON object data, and its
// envelope is JSON that decodes back to the same type, time and data.
func FuzzValidate(f *testing.F) {
	f.Add("ten_a", "job.created", "key-1", []byte(`{"a": 1}`), int64(0))
	f.Add("ten_a", "job..created", "", []byte(`{"a":"\xff"}`), int64(1))
	f.Add("ten a", "job.*", "\xff", []byte(`[1]`), int64(-1))
	f.Add("t", "x", "", []byte(" \n{ \"b\" : [ true , null ] } \t"), int64(1764000000123))
	f.Add("t", "x\u2028y", "", []byte(`{"<>&":"\u2028"}`), int64(1<<62))
	f.Add("t", "e", "", []byte(`{"a":1} {"b":2}`), int64(0))
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	v := validator{catalog: anyCatalog{}, schemas: newSchemas(slog.New(slog.DiscardHandler)), maxDataBytes: 1 << 16}
	f.Fuzz(func(t *testing.T, tenant, eventType, key string, data []byte, tsMillis int64) {
		in := input{tenantID: tenant, eventType: eventType, data: data, idempotencyKey: key}
		if tsMillis != 0 {
			in.timestamp, in.hasTimestamp = time.UnixMilli(tsMillis), true
		}
		ev, err := v.validate(in, now)
		if err != nil {
			var p *problem
			if !errors.As(err, &p) {
				t.Fatalf("validate refused with %T %v, not a problem", err, err)
			}
			return
		}
		if !validToken(ev.tenantID, false) || !validToken(ev.eventType, true) || !utf8.ValidString(ev.idempotencyKey) {
			t.Fatalf("validate accepted tenant %q, event type %q, key %q", ev.tenantID, ev.eventType, ev.idempotencyKey)
		}
		if !utf8.Valid(ev.data) || !json.Valid(ev.data) || len(ev.data) == 0 || ev.data[0] != '{' {
			t.Fatalf("validate accepted data %q as %q", data, ev.data)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, ev.data); err != nil || !bytes.Equal(compact.Bytes(), ev.data) {
			t.Fatalf("data %q is not compact: %q, %v", ev.data, compact.Bytes(), err)
		}
		body, err := envelope(ev.eventType, ev.timestamp, ev.data)
		if err != nil {
			t.Fatalf("envelope of an accepted event: %v", err)
		}
		var env struct {
			Type      string          `json:"type"`
			Timestamp string          `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("envelope %q is not JSON: %v", body, err)
		}
		if env.Type != ev.eventType || !bytes.Equal(env.Data, ev.data) {
			t.Fatalf("envelope %q decodes to type %q, data %q; want %q, %q", body, env.Type, env.Data, ev.eventType, ev.data)
		}
		if ts, err := time.Parse(timestampLayout, env.Timestamp); err != nil || !ts.Equal(ev.timestamp) {
			t.Fatalf("envelope timestamp %q parses to %v, %v; want %v", env.Timestamp, ts, err, ev.timestamp)
		}
	})
}
