package natsx

import (
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

func TestLinkHeaderRoundTrip(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	h := nats.Header{}
	InjectLink(h, sc)
	if got, want := h.Get(LinkHeader), "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"; got != want {
		t.Fatalf("%s = %q, want %q", LinkHeader, got, want)
	}
	got, ok := ExtractLink(h)
	if !ok || got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() {
		t.Errorf("ExtractLink = %v (%v), want %v", got, ok, sc)
	}

	empty := nats.Header{}
	InjectLink(empty, trace.SpanContext{})
	if len(empty) != 0 {
		t.Errorf("an invalid span context set headers %v", empty)
	}
	for _, v := range []string{"", "garbage", "00-00000000000000000000000000000000-0102030405060708-01"} {
		if _, ok := ExtractLink(nats.Header{LinkHeader: {v}}); ok {
			t.Errorf("ExtractLink(%q) found a link", v)
		}
	}
}
