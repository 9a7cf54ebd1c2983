package delivery

import (
	"context"
	"net/url"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/retryq"
)

// TestRetryLinkRoundTrip: a sampled attempt's span goes into the item (its
// trace too for a resend), and the return links to it in the event's
// trace, or in the stored one; an unsampled attempt stores nothing.
func TestRetryLinkRoundTrip(t *testing.T) {
	attemptTrace := trace.TraceID{9, 9}
	eventTrace := trace.TraceID{7, 7}
	attempt := trace.NewSpanContext(trace.SpanContextConfig{TraceID: attemptTrace, SpanID: trace.SpanID{3}, TraceFlags: trace.FlagsSampled})
	sampled := trace.ContextWithSpanContext(context.Background(), attempt)
	unsampled := trace.ContextWithSpanContext(context.Background(), attempt.WithTraceFlags(0))

	for _, tc := range []struct {
		name      string
		ctx       context.Context
		resend    string
		wantTrace trace.TraceID // of the link; zero for none
	}{
		{"sampled", sampled, "", eventTrace},
		{"sampled resend", sampled, "rsnd_1", attemptTrace},
		{"unsampled", unsampled, "", trace.TraceID{}},
		{"no trace", context.Background(), "", trace.TraceID{}},
	} {
		it := retryq.Item{Seq: 1, Endpoint: "ep", ResendID: tc.resend}
		linkToAttempt(tc.ctx, &it)
		m, err := retryq.Encode(it)
		if err != nil {
			t.Fatal(err)
		}
		back, err := retryq.Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		link := returnLink(retryq.Claimed{Item: back, Due: time.Now()}, eventTrace)
		if link.TraceID() != tc.wantTrace {
			t.Errorf("%s: link trace = %s, want %s", tc.name, link.TraceID(), tc.wantTrace)
		}
		if tc.wantTrace.IsValid() && (link.SpanID() != attempt.SpanID() || !link.IsSampled() || !link.IsRemote()) {
			t.Errorf("%s: link = %v, want the attempt's span %s, sampled, remote", tc.name, link, attempt.SpanID())
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pass@example.com/hooks?token=secret&a=1&a=2#frag": "https://example.com/hooks?a=REDACTED&token=REDACTED",
		"http://example.com:8080/a%2Fb":                                 "http://example.com:8080/a%2Fb",
		"https://example.com":                                           "https://example.com",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := redactURL(u); got != want {
			t.Errorf("redactURL(%s) = %s, want %s", in, got, want)
		}
	}
}
