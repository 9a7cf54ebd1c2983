package ingest

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// catalog is the part of the configuration validation reads; a
// configwatch.View provides it from memory.
type catalog interface {
	Tenant(id string) (*configv1.Tenant, bool)
	EventType(name string) (*configv1.EventType, bool)
}

// input is a publish as received, from either transport.
type input struct {
	tenantID       string
	eventType      string
	data           []byte
	idempotencyKey string
	// timestamp is when the event happened, if hasTimestamp.
	timestamp    time.Time
	hasTimestamp bool
}

// event is a validated input, ready to store.
type event struct {
	tenantID  string
	eventType string
	// data is the compacted JSON object.
	data           []byte
	idempotencyKey string
	// timestamp is in UTC, truncated to milliseconds.
	timestamp time.Time
	// timestampGiven is false when timestamp defaulted to the time received.
	timestampGiven bool
}

// validator checks inputs against the catalog and the limits.
type validator struct {
	catalog      catalog
	schemas      *schemas
	maxDataBytes int
}

// validate returns in as an event, or a problem saying what is wrong with
// it. now is the time the input was received.
func (v validator) validate(in input, now time.Time) (event, error) {
	if in.tenantID == "" {
		return event{}, badRequest(pulseclient.CodeInvalidField, "tenant_id is required")
	}
	if !validToken(in.tenantID, false) {
		return event{}, badRequest(pulseclient.CodeInvalidField, "tenant_id %q is malformed: it may not contain '.', '*', '>' or white space", in.tenantID)
	}
	if in.eventType == "" {
		return event{}, badRequest(pulseclient.CodeInvalidField, "event_type is required")
	}
	if !validToken(in.eventType, true) {
		return event{}, badRequest(pulseclient.CodeInvalidField, "event_type %q is malformed: it may not contain '*', '>', white space or empty dot-separated parts", in.eventType)
	}
	if !utf8.ValidString(in.idempotencyKey) {
		return event{}, badRequest(pulseclient.CodeInvalidField, "idempotency_key is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(in.idempotencyKey); n > maxIdempotencyKey {
		return event{}, badRequest(pulseclient.CodeInvalidField, "idempotency_key is %d characters, the limit is %d", n, maxIdempotencyKey)
	}
	data, err := v.checkData(in.data)
	if err != nil {
		return event{}, err
	}
	ts, given := in.timestamp, in.hasTimestamp
	if !given {
		ts = now
	}
	if d := ts.Sub(now).Abs(); d > maxClockSkew {
		return event{}, badRequest(pulseclient.CodeInvalidTimestamp, "timestamp %s is more than a year from now", ts.UTC().Format(time.RFC3339))
	}
	if _, ok := v.catalog.Tenant(in.tenantID); !ok {
		return event{}, unprocessable(pulseclient.CodeUnknownTenant, "tenant %q does not exist", in.tenantID)
	}
	et, ok := v.catalog.EventType(in.eventType)
	if !ok {
		return event{}, unprocessable(pulseclient.CodeUnknownEventType, "event type %q is not in the catalog", in.eventType)
	}
	if err := v.schemas.check(et, data); err != nil {
		return event{}, err
	}
	return event{
		tenantID:       in.tenantID,
		eventType:      in.eventType,
		data:           data,
		idempotencyKey: in.idempotencyKey,
		timestamp:      ts.UTC().Truncate(time.Millisecond),
		timestampGiven: given,
	}, nil
}

// checkData returns data compacted if it is a JSON object in valid UTF-8
// within the size limit.
func (v validator) checkData(data []byte) ([]byte, error) {
	if len(data) > v.maxDataBytes {
		return nil, tooLarge("data is %d bytes, the limit is %d", len(data), v.maxDataBytes)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, badRequest(pulseclient.CodeInvalidData, "data is required: a JSON object")
	}
	if !utf8.Valid(trimmed) {
		return nil, badRequest(pulseclient.CodeInvalidData, "data is not valid UTF-8")
	}
	var compact bytes.Buffer
	compact.Grow(len(trimmed))
	if err := json.Compact(&compact, trimmed); err != nil {
		return nil, badRequest(pulseclient.CodeInvalidData, "data is not valid JSON: %v", err)
	}
	if trimmed[0] != '{' {
		return nil, badRequest(pulseclient.CodeInvalidData, "data must be a JSON object, got %s", jsonKind(trimmed[0]))
	}
	return compact.Bytes(), nil
}

// jsonKind names the kind of JSON value that starts with b.
func jsonKind(b byte) string {
	switch b {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// validToken reports whether s can be used in a NATS subject and a KV key:
// no wildcards, white space or control characters; dots only between
// non-empty parts, and only when dotted is true.
func validToken(s string, dotted bool) bool {
	if s == "" || strings.ContainsAny(s, "*>") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	if !dotted {
		return !strings.Contains(s, ".")
	}
	return !strings.HasPrefix(s, ".") && !strings.HasSuffix(s, ".") && !strings.Contains(s, "..")
}
