package ingest

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/pulsehooks/pulsehooks/pkg/configwatch"
	"github.com/pulsehooks/pulsehooks/pkg/eventschema"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// schemas holds the compiled JSON Schema of each event type, kept by name
// and source. compileAll compiles the catalog after each snapshot and change;
// an event that arrives before that compiles its type's schema itself, once.
// No event pays for a compile its type's schema already had.
type schemas struct {
	log *slog.Logger

	mu       sync.RWMutex
	compiled map[string]compiledSchema // by event type name
}

// compiledSchema is one event type's schema as compiled from source.
type compiledSchema struct {
	source string
	schema *eventschema.Schema // nil: no schema, or one that does not compile
}

func newSchemas(log *slog.Logger) *schemas {
	return &schemas{log: log, compiled: map[string]compiledSchema{}}
}

// check validates data against the event type's schema. A type without a
// schema accepts any object; one whose stored schema does not compile (the
// config service refuses those, so only old data) is logged once and accepts
// any object too.
func (s *schemas) check(et *configv1.EventType, data []byte) error {
	sch := s.get(et)
	if sch == nil {
		return nil
	}
	err := sch.Validate(data)
	var e *eventschema.Error
	if errors.As(err, &e) {
		p := unprocessable(pulseclient.CodeSchemaMismatch, "data does not match the %s schema: at %s: %s (rule %q)", et.GetName(), "data"+e.Path, e.Message, e.Rule)
		p.field = "data" + e.Path
		return p
	}
	return err
}

// compileAll compiles the schemas of the view's catalog each time it changes,
// until ctx ends.
func (s *schemas) compileAll(ctx context.Context, view *configwatch.View) {
	for {
		changed := view.Changed()
		for _, et := range view.EventTypes() {
			s.get(et)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// get returns the compiled schema of et, compiling it if its source changed.
func (s *schemas) get(et *configv1.EventType) *eventschema.Schema {
	src := et.GetJsonSchema()
	s.mu.RLock()
	c, ok := s.compiled[et.GetName()]
	s.mu.RUnlock()
	if ok && c.source == src {
		return c.schema
	}
	c = compiledSchema{source: src}
	if src != "" {
		sch, err := eventschema.Compile([]byte(src))
		if err != nil {
			s.log.Error("event type schema does not compile; its events are not validated", "event_type", et.GetName(), "err", err)
		}
		c.schema = sch
	}
	s.mu.Lock()
	s.compiled[et.GetName()] = c
	s.mu.Unlock()
	return c.schema
}
