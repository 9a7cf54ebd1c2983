package lazylog

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestWithAddsAttrsWhenWriting(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, nil)).With("service", "svc")
	log := With(base, slog.String("endpoint_id", "ep_1"), slog.Int("attempt", 2))

	log.Debug("below the level")
	if buf.Len() != 0 {
		t.Fatalf("a record below the level was written: %s", buf.String())
	}
	log.With("extra", "x").WithGroup("g").Info("delivered", "status", 200)
	log.Warn("plain")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]any{first, second} {
		if m["service"] != "svc" || m["endpoint_id"] != "ep_1" || m["attempt"] != float64(2) {
			t.Errorf("record lacks the lazy attributes: %v", m)
		}
	}
	if first["extra"] != "x" {
		t.Errorf("With after WithLazy lost its attribute: %v", first)
	}
	if g, ok := first["g"].(map[string]any); !ok || g["status"] != float64(200) {
		t.Errorf("group attributes not in the group: %v", first)
	}
	if _, ok := second["extra"]; ok {
		t.Errorf("With leaked into the parent logger: %v", second)
	}
}

// ctxKey marks the context handed to the logger.
type ctxKey struct{}

// ctxHandler records the context value each record was handled with.
type ctxHandler struct {
	slog.Handler
	seen *[]any
}

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	*h.seen = append(*h.seen, ctx.Value(ctxKey{}))
	return h.Handler.Handle(ctx, r)
}

func TestWithPassesTheContext(t *testing.T) {
	var (
		buf  bytes.Buffer
		seen []any
	)
	log := With(slog.New(ctxHandler{slog.NewJSONHandler(&buf, nil), &seen}), slog.String("k", "v"))
	log.InfoContext(context.WithValue(context.Background(), ctxKey{}, "mark"), "hello")
	if len(seen) != 1 || seen[0] != "mark" {
		t.Errorf("base handler saw contexts %v, want [mark]", seen)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["k"] != "v" {
		t.Errorf("lazy attribute missing: %v", m)
	}
}
