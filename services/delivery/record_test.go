package delivery

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

func TestHeaderListRedactsAndSorts(t *testing.T) {
	h := http.Header{}
	h.Set("Webhook-Signature", "v1,secret")
	h.Set("Authorization", "Basic dXNlcjpwYXNz")
	h.Set("X-Api-Key", "k")
	h.Set("Webhook-Id", "msg_1")
	h.Add("X-Multi", "a")
	h.Add("X-Multi", "b")
	h.Set("X-Long", strings.Repeat("v", 2*maxRecordedValue))
	got := headerList(h)
	want := []struct{ name, value string }{
		{"authorization", redacted},
		{"webhook-id", "msg_1"},
		{"webhook-signature", redacted},
		{"x-api-key", redacted},
		{"x-long", strings.Repeat("v", maxRecordedValue)},
		{"x-multi", "a"},
		{"x-multi", "b"},
	}
	if len(got) != len(want) {
		t.Fatalf("headerList has %d entries, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].GetName() != w.name || got[i].GetValue() != w.value {
			t.Errorf("entry %d = %s: %.20q, want %s: %.20q", i, got[i].GetName(), got[i].GetValue(), w.name, w.value)
		}
	}
}

func TestRequestHeaderListRedactsSecretHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("X-Signing-Partner", "hunter2")
	h.Set("X-Team", "billing")
	h.Set("X-Access-Token", "t0k3n")
	ep := &configv1.Endpoint{SecretHeaders: []string{"X-Signing-Partner"}}
	got := map[string]string{}
	for _, hd := range requestHeaderList(h, ep) {
		got[hd.GetName()] = hd.GetValue()
	}
	want := map[string]string{"x-signing-partner": redacted, "x-team": "billing", "x-access-token": redacted}
	if !maps.Equal(got, want) {
		t.Errorf("requestHeaderList = %v, want %v", got, want)
	}
}

func TestHeaderListIsBounded(t *testing.T) {
	h := http.Header{}
	for i := 0; i < 2*maxRecordedHeaders; i++ {
		h.Add("X-Many", "v")
	}
	if got := len(headerList(h)); got != maxRecordedHeaders {
		t.Errorf("headerList kept %d values, want %d", got, maxRecordedHeaders)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: not split
		{"日本", 4, "日"},
		{"日本", 2, ""},
	} {
		got := truncate(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
