package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// timestampLayout is RFC 3339 in UTC with milliseconds, as the envelope
// carries it: 2026-11-26T20:53:39.123Z.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// envelope returns the exact JSON body endpoints receive:
// {"type":…,"timestamp":…,"data":…}. data must be compact JSON.
func envelope(eventType string, ts time.Time, data []byte) ([]byte, error) {
	typ, err := jsonString(eventType)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(data) + len(typ) + 64)
	b.WriteString(`{"type":`)
	b.Write(typ)
	b.WriteString(`,"timestamp":"`)
	b.WriteString(ts.UTC().Format(timestampLayout))
	b.WriteString(`","data":`)
	b.Write(data)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(s string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode %q as JSON: %w", s, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
