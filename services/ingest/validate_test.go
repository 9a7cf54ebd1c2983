package ingest

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// mapCatalog is a catalog held in maps.
type mapCatalog struct {
	tenants    map[string]bool
	eventTypes map[string]bool
}

func (c mapCatalog) Tenant(id string) (*configv1.Tenant, bool) {
	if !c.tenants[id] {
		return nil, false
	}
	return &configv1.Tenant{Id: id}, true
}

func (c mapCatalog) EventType(name string) (*configv1.EventType, bool) {
	if !c.eventTypes[name] {
		return nil, false
	}
	return &configv1.EventType{Name: name}, true
}

func TestValidate(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 987_654_321, time.UTC)
	v := validator{
		catalog:      mapCatalog{tenants: map[string]bool{"ten_a": true}, eventTypes: map[string]bool{"job.created": true}},
		schemas:      newSchemas(slog.New(slog.DiscardHandler)),
		maxDataBytes: 64,
	}
	good := func(change func(*input)) input {
		in := input{tenantID: "ten_a", eventType: "job.created", data: []byte(`{"a": 1}`)}
		if change != nil {
			change(&in)
		}
		return in
	}
	tests := []struct {
		name       string
		in         input
		wantStatus int
		wantCode   string
		wantData   string
		wantTime   time.Time
	}{
		{name: "valid, default time", in: good(nil), wantData: `{"a":1}`, wantTime: now.Truncate(time.Millisecond)},
		{name: "valid, given time", in: good(func(in *input) {
			in.timestamp, in.hasTimestamp = time.Date(2026, 5, 1, 14, 0, 0, 1_500_000, time.FixedZone("CEST", 7200)), true
		}), wantData: `{"a":1}`, wantTime: time.Date(2026, 5, 1, 12, 0, 0, 1_000_000, time.UTC)},
		{name: "data exactly at the limit", in: good(func(in *input) { in.data = bigObject(64) }), wantData: string(bigObject(64)), wantTime: now.Truncate(time.Millisecond)},
		{name: "data with surrounding space", in: good(func(in *input) { in.data = []byte(" \n{ } \t") }), wantData: `{}`, wantTime: now.Truncate(time.Millisecond)},
		{name: "key of 256 characters", in: good(func(in *input) { in.idempotencyKey = strings.Repeat("ü", 256) }), wantData: `{"a":1}`, wantTime: now.Truncate(time.Millisecond)},
		{name: "no tenant", in: good(func(in *input) { in.tenantID = "" }), wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
		{name: "dotted tenant", in: good(func(in *input) { in.tenantID = "ten.a" }), wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
		{name: "tenant with space", in: good(func(in *input) { in.tenantID = "ten a" }), wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
		{name: "no event type", in: good(func(in *input) { in.eventType = "" }), wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
		{name: "event type wildcard", in: good(func(in *input) { in.eventType = "job.>" }), wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
		{name: "event type empty part", in: good(func(in *input) { in.eventType = "job..created" }), wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
		{name: "unknown tenant", in: good(func(in *input) { in.tenantID = "ten_b" }), wantStatus: 422, wantCode: pulseclient.CodeUnknownTenant},
		{name: "unknown event type", in: good(func(in *input) { in.eventType = "job.gone" }), wantStatus: 422, wantCode: pulseclient.CodeUnknownEventType},
		{name: "data over the limit", in: good(func(in *input) { in.data = bigObject(65) }), wantStatus: 413, wantCode: pulseclient.CodePayloadTooLarge},
		{name: "no data", in: good(func(in *input) { in.data = nil }), wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "blank data", in: good(func(in *input) { in.data = []byte("  ") }), wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "number", in: good(func(in *input) { in.data = []byte(`42`) }), wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "boolean", in: good(func(in *input) { in.data = []byte(`true`) }), wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "unterminated object", in: good(func(in *input) { in.data = []byte(`{"a":1`) }), wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "invalid UTF-8", in: good(func(in *input) { in.data = []byte("{\"\xc3\x28\":1}") }), wantStatus: 400, wantCode: pulseclient.CodeInvalidData},
		{name: "key too long", in: good(func(in *input) { in.idempotencyKey = strings.Repeat("k", 257) }), wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
		{name: "key not UTF-8", in: good(func(in *input) { in.idempotencyKey = "\xff" }), wantStatus: 400, wantCode: pulseclient.CodeInvalidField},
		{name: "timestamp 13 months ago", in: good(func(in *input) { in.timestamp, in.hasTimestamp = now.AddDate(0, -13, 0), true }), wantStatus: 400, wantCode: pulseclient.CodeInvalidTimestamp},
		{name: "zero timestamp given", in: good(func(in *input) { in.timestamp, in.hasTimestamp = time.Time{}, true }), wantStatus: 400, wantCode: pulseclient.CodeInvalidTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := v.validate(tt.in, now)

			if tt.wantStatus != 0 {
				var p *problem
				if !errors.As(err, &p) {
					t.Fatalf("validate error = %v, want a problem", err)
				}
				if p.status != tt.wantStatus || p.code != tt.wantCode || p.message == "" {
					t.Errorf("problem = %d %s %q, want %d %s with a message", p.status, p.code, p.message, tt.wantStatus, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if string(ev.data) != tt.wantData {
				t.Errorf("data = %s, want %s", ev.data, tt.wantData)
			}
			if !ev.timestamp.Equal(tt.wantTime) || ev.timestamp.Location() != time.UTC {
				t.Errorf("timestamp = %v, want %v in UTC", ev.timestamp, tt.wantTime)
			}
			if ev.timestampGiven != tt.in.hasTimestamp {
				t.Errorf("timestampGiven = %v, want %v", ev.timestampGiven, tt.in.hasTimestamp)
			}
		})
	}
}

func TestEnvelope(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -3600))
	tests := []struct {
		eventType string
		data      string
		want      string
	}{
		{"job.completed", `{}`, `{"type":"job.completed","timestamp":"2026-01-02T04:04:05.000Z","data":{}}`},
		{"job.<b>", `{"a":"\u003c"}`, `{"type":"job.<b>","timestamp":"2026-01-02T04:04:05.000Z","data":{"a":"\u003c"}}`},
		{`job."q"`, `{"n":[1,2]}`, `{"type":"job.\"q\"","timestamp":"2026-01-02T04:04:05.000Z","data":{"n":[1,2]}}`},
	}
	for _, tt := range tests {
		got, err := envelope(tt.eventType, ts, []byte(tt.data))
		if err != nil {
			t.Fatalf("envelope(%q): %v", tt.eventType, err)
		}
		if string(got) != tt.want {
			t.Errorf("envelope(%q, %s) = %s, want %s", tt.eventType, tt.data, got, tt.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	got, err := Config{OperatorToken: "t"}.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	want := Config{
		HTTPAddr: DefaultHTTPAddr, OperatorToken: "t", MaxDataBytes: DefaultMaxDataBytes, IdempotencyTTL: DefaultIdempotencyTTL,
		MaxInFlight: DefaultMaxInFlight, ShutdownTimeout: DefaultShutdownTimeout, DrainPeriod: DefaultDrainPeriod,
		RateLimit: RateLimit{EventsPerSecond: DefaultEventsPerSecond, Burst: DefaultBurst},
	}
	if got != want {
		t.Errorf("withDefaults = %+v, want %+v", got, want)
	}
	if got.maxBodyBytes() <= int64(got.MaxDataBytes) {
		t.Errorf("maxBodyBytes = %d, want more than MaxDataBytes %d", got.maxBodyBytes(), got.MaxDataBytes)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no token", Config{}, "OperatorToken is required"},
		{"negative size", Config{OperatorToken: "t", MaxDataBytes: -1}, "MaxDataBytes"},
		{"negative ttl", Config{OperatorToken: "t", IdempotencyTTL: -time.Second}, "IdempotencyTTL"},
		{"negative in flight", Config{OperatorToken: "t", MaxInFlight: -1}, "MaxInFlight"},
		{"negative shutdown", Config{OperatorToken: "t", ShutdownTimeout: -time.Second}, "ShutdownTimeout"},
	}
	for _, tt := range tests {
		_, err := tt.cfg.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: withDefaults error = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}

func TestSchemasRecompileWhenTheCatalogChanges(t *testing.T) {
	s := newSchemas(slog.New(slog.DiscardHandler))
	v1 := &configv1.EventType{Name: "job.created", JsonSchema: `{"type":"object","required":["job_id"]}`}
	v2 := &configv1.EventType{Name: "job.created", JsonSchema: `{"type":"object","required":["job_id","status"]}`}
	tests := []struct {
		name     string
		et       *configv1.EventType
		data     string
		wantCode string
	}{
		{"first schema, valid", v1, `{"job_id":"j"}`, ""},
		{"first schema again, cached", v1, `{"job_id":"j"}`, ""},
		{"changed schema", v2, `{"job_id":"j"}`, pulseclient.CodeSchemaMismatch},
		{"schema removed", &configv1.EventType{Name: "job.created"}, `{}`, ""},
		{"stored schema does not compile", &configv1.EventType{Name: "job.created", JsonSchema: `{"type":"objekt"}`}, `{}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.check(tt.et, []byte(tt.data))
			var p *problem
			switch {
			case tt.wantCode == "" && err != nil:
				t.Fatalf("check = %v, want nil", err)
			case tt.wantCode != "" && (!errors.As(err, &p) || p.code != tt.wantCode || p.status != 422):
				t.Fatalf("check = %v, want a 422 %s", err, tt.wantCode)
			}
		})
	}
}

func TestSchemasCompiledBeforeTheFirstEvent(t *testing.T) {
	h := newHarness(t, options{})
	s := h.svc.validator.schemas
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.RLock()
		c, ok := s.compiled["job.cancelled"]
		s.mu.RUnlock()
		if ok && c.schema != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("job.cancelled's schema was not compiled after the snapshot")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
