// Package lazylog gives a logger attributes that cost nothing until a record
// is written.
package lazylog

import (
	"context"
	"log/slog"
	"slices"
)

// With returns a logger that adds attrs to every record it writes, like
// log.With, but does no work for them until a record is written. log.With
// formats its attributes at once (the JSON handler pre-renders them), which
// is wasted on a hot path that logs only when something goes wrong, such as
// one delivery attempt. The attributes follow the record's own in the output.
func With(log *slog.Logger, attrs ...slog.Attr) *slog.Logger {
	return slog.New(lazyHandler{base: log.Handler(), attrs: attrs})
}

// lazyHandler holds attributes to add to each record it hands to base.
type lazyHandler struct {
	base  slog.Handler
	attrs []slog.Attr
}

func (h lazyHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level)
}

func (h lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	return h.base.Handle(ctx, r) // the base handler wraps its own errors
}

func (h lazyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return lazyHandler{base: h.base, attrs: append(slices.Clip(h.attrs), as...)}
}

// WithGroup applies the held attributes first: they belong outside the group.
func (h lazyHandler) WithGroup(name string) slog.Handler {
	return h.base.WithAttrs(h.attrs).WithGroup(name)
}
