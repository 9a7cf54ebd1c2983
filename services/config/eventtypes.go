package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/eventschema"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// eventTypeNamePattern is what an event type name must match: dot-separated
// lower-case tokens, so it is a valid NATS subject part.
var eventTypeNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$`)

// Limits of catalog entries.
const (
	maxEventTypeNameLen    = 64
	maxEventTypeDescLen    = 1024
	catalogSeededMarkerKey = "catalog_seeded"
)

// EventType is one entry of the event-type catalog.
type EventType struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// ExamplePayload is a JSON object, the data of an example event.
	ExamplePayload json.RawMessage `json:"example_payload"`
	// JSONSchema is a JSON Schema of the event data, or empty.
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
}

func eventTypeFromProto(et *configv1.EventType) EventType {
	out := EventType{
		Name:           et.GetName(),
		Description:    et.GetDescription(),
		ExamplePayload: json.RawMessage(et.GetExamplePayload()),
		CreatedAt:      et.GetCreatedAt().AsTime(),
	}
	if et.GetJsonSchema() != "" {
		out.JSONSchema = json.RawMessage(et.GetJsonSchema())
	}
	return out
}

// checkEventTypeName reports whether name is a well-formed event type name.
func checkEventTypeName(field, name string) error {
	if len(name) > maxEventTypeNameLen || !eventTypeNamePattern.MatchString(name) {
		return invalid(field, "%q is not a valid event type name: lower-case letters, digits, '_' and '-' in dot-separated parts, at most %d characters, such as job.completed", name, maxEventTypeNameLen)
	}
	return nil
}

// checkJSONObject checks that raw is one JSON object and returns it compacted.
func checkJSONObject(field string, raw json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, invalid(field, "must be a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil {
		return nil, invalid(field, "must be a JSON object")
	}
	return buf.Bytes(), nil
}

// checkExample compiles schema (JSON Schema draft 2020-12, formats asserted,
// as ingest applies it) and checks that the example payload matches it.
func checkExample(schema, example json.RawMessage) error {
	sch, err := eventschema.Compile(schema)
	if err != nil {
		return invalid("json_schema", "is not a valid JSON Schema (draft 2020-12): %v", err)
	}
	var e *eventschema.Error
	if err := sch.Validate(example); errors.As(err, &e) {
		return invalid("example_payload", "does not match json_schema: %v", e)
	} else if err != nil {
		return fmt.Errorf("check example payload: %w", err)
	}
	return nil
}

// normalizeEventType checks an entry and returns it with compacted JSON.
func normalizeEventType(et EventType) (EventType, error) {
	if err := checkEventTypeName("name", et.Name); err != nil {
		return et, err
	}
	et.Description = strings.TrimSpace(et.Description)
	switch {
	case et.Description == "":
		return et, invalid("description", "is required: say when this event is sent")
	case !utf8.ValidString(et.Description) || utf8.RuneCountInString(et.Description) > maxEventTypeDescLen:
		return et, invalid("description", "must be valid UTF-8 of at most %d characters", maxEventTypeDescLen)
	case strings.ContainsFunc(et.Description, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }):
		return et, invalid("description", "must not contain control characters")
	}
	var err error
	if et.ExamplePayload, err = checkJSONObject("example_payload", et.ExamplePayload); err != nil {
		return et, err
	}
	if s := bytes.TrimSpace(et.JSONSchema); len(s) == 0 || bytes.Equal(s, []byte("null")) {
		et.JSONSchema = nil
	} else if et.JSONSchema, err = checkJSONObject("json_schema", et.JSONSchema); err != nil {
		return et, err
	} else if err := checkExample(et.JSONSchema, et.ExamplePayload); err != nil {
		return et, err
	}
	return et, nil
}

// PutEventType creates or replaces a catalog entry and reports whether it was
// created. Its name must match ^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$
// (at most 64 characters), its description is required, its example payload
// must be a JSON object and its schema, when given, a JSON Schema (draft
// 2020-12) that the example payload matches.
func (s *Store) PutEventType(ctx context.Context, et EventType) (EventType, bool, error) {
	et, err := normalizeEventType(et)
	if err != nil {
		return EventType{}, false, err
	}
	var (
		created bool
		rev     uint64
	)
	err = retryOnConflict(ctx, "store event type "+et.Name, func() error {
		var cur eventTypeRecord
		curRev, found, err := getJSON(ctx, s.eventTypes, et.Name, &cur)
		if err != nil {
			return err
		}
		rec := eventTypeRecord{Name: et.Name, Description: et.Description, ExamplePayload: et.ExamplePayload, JSONSchema: et.JSONSchema, CreatedAt: s.now().UTC()}
		if found {
			rec.CreatedAt = cur.CreatedAt
		}
		data, err := marshal("event type", rec)
		if err != nil {
			return err
		}
		if found {
			rev, err = s.eventTypes.kv.Update(ctx, et.Name, data, curRev)
		} else {
			rev, err = s.eventTypes.kv.Create(ctx, et.Name, data)
		}
		created = !found
		et.CreatedAt = rec.CreatedAt
		return err
	})
	if err != nil {
		return EventType{}, false, fmt.Errorf("store event type %s: %w", et.Name, err)
	}
	s.awaitApplied(ctx, s.eventTypes, rev)
	s.log.InfoContext(ctx, "event type stored", "event_type", et.Name, "created", created)
	return et, created, nil
}

// DeleteEventType removes a catalog entry. Endpoints that filter on it keep
// the name in their filter; ingest refuses events of the type from then on.
func (s *Store) DeleteEventType(ctx context.Context, name string) error {
	if checkEventTypeName("name", name) != nil {
		return notFound("event type", name)
	}
	err := retryOnConflict(ctx, "delete event type "+name, func() error {
		var cur eventTypeRecord
		rev, found, err := getJSON(ctx, s.eventTypes, name, &cur)
		if err != nil {
			return err
		}
		if !found {
			return notFound("event type", name)
		}
		return s.eventTypes.kv.Delete(ctx, name, jetstream.LastRevision(rev))
	})
	if err != nil {
		return fmt.Errorf("delete event type: %w", err)
	}
	s.awaitDeleted(ctx, s.eventTypes)
	s.log.InfoContext(ctx, "event type deleted", "event_type", name)
	return nil
}

// ListEventTypes returns the catalog by name. It waits until Run has loaded
// the state.
func (s *Store) ListEventTypes(ctx context.Context) ([]EventType, error) {
	if err := s.state.waitLoaded(ctx); err != nil {
		return nil, err
	}
	ets := s.state.allEventTypes()
	out := make([]EventType, len(ets))
	for i, et := range ets {
		out[i] = eventTypeFromProto(et)
	}
	return out, nil
}

// eventTypeExists reads the store (not the state, so it works before Run)
// to check that a catalog entry exists.
func (s *Store) eventTypeExists(ctx context.Context, name string) (bool, error) {
	if checkEventTypeName("", name) != nil {
		return false, nil
	}
	_, err := s.eventTypes.kv.Get(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up event type %s: %w", name, err)
	}
	return true, nil
}

// seedCatalog stores the default catalog on the first start only: a marker
// key records that it was done, so an operator's deletions stick.
func (s *Store) seedCatalog(ctx context.Context) error {
	_, err := s.meta.kv.Get(ctx, catalogSeededMarkerKey)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("read catalog marker: %w", err)
	}
	for _, et := range defaultCatalog() {
		et, err := normalizeEventType(et)
		if err != nil {
			return fmt.Errorf("default event type %s: %w", et.Name, err)
		}
		rec := eventTypeRecord{Name: et.Name, Description: et.Description, ExamplePayload: et.ExamplePayload, JSONSchema: et.JSONSchema, CreatedAt: s.now().UTC()}
		data, err := marshal("event type", rec)
		if err != nil {
			return err
		}
		if _, err := s.eventTypes.kv.Create(ctx, et.Name, data); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("seed event type %s: %w", et.Name, err)
		}
	}
	marker := fmt.Appendf(nil, `{"seeded_at":%q}`, s.now().UTC().Format(time.RFC3339))
	if _, err := s.meta.kv.Create(ctx, catalogSeededMarkerKey, marker); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("write catalog marker: %w", err)
	}
	return nil
}
