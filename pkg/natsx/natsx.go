// Package natsx connects to NATS the way every pulsehooks service does and
// carries W3C trace context in NATS message headers.
package natsx

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Connect dials NATS with reconnects that never give up, logging connection
// state changes. name identifies the client in server monitoring.
func Connect(url, name string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectBufSize(64<<20),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	return nc, nil
}

// HeaderCarrier adapts nats.Header to propagation.TextMapCarrier. Keys are
// stored lower-case, as W3C trace context names them.
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier{}

// Get returns the first value of key.
func (c HeaderCarrier) Get(key string) string {
	v := c[strings.ToLower(key)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Set sets key to value.
func (c HeaderCarrier) Set(key, value string) {
	c[strings.ToLower(key)] = []string{value}
}

// Keys lists the keys present.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context of ctx into msg's headers.
func Inject(ctx context.Context, msg *nats.Msg) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	propagation.TraceContext{}.Inject(ctx, HeaderCarrier(msg.Header))
}

// Extract returns ctx with the remote trace context carried by h.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, HeaderCarrier(h))
}

// LinkHeader carries, in W3C traceparent form, the span a message is linked
// to rather than a child of: the attempt that put a retry in the schedule.
const LinkHeader = "Pulsehooks-Link"

// InjectLink sets LinkHeader of h to sc, when sc is valid.
func InjectLink(h nats.Header, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	var c linkCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	h[LinkHeader] = []string{c.traceparent}
}

// ExtractLink returns the span LinkHeader of h names, if any.
func ExtractLink(h nats.Header) (trace.SpanContext, bool) {
	v := h.Get(LinkHeader)
	if v == "" {
		return trace.SpanContext{}, false
	}
	c := linkCarrier{traceparent: v}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &c))
	return sc, sc.IsValid()
}

// linkCarrier carries one traceparent value.
type linkCarrier struct{ traceparent string }

func (c *linkCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.traceparent
	}
	return ""
}

func (c *linkCarrier) Set(key, value string) {
	if key == "traceparent" {
		c.traceparent = value
	}
}

func (c *linkCarrier) Keys() []string { return []string{"traceparent"} }
