package config

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEndpointURL feeds arbitrary URLs to the endpoint URL rule: it never
// panics, and an accepted URL is stored trimmed, is accepted again as
// stored, and survives a JSON round trip unchanged.
func FuzzEndpointURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/hook", " http://example.com:8080/x?y=1 ", "http://[::1%25lo]:9/", "http://[fe80::1%25eth0]/",
		"http://2130706433/", "http://0x7f.0.0.1/", "http://127.1/", "http://localhost./", "https://u:p@example.com/",
		"https://example.com/#frag", "https://example.com/\xff", "http://[64:ff9b::a00:1]/", "ftp://example.com/",
	} {
		f.Add(s)
	}
	s := &Store{}
	f.Fuzz(func(t *testing.T, raw string) {
		var rec endpointRecord
		if err := s.applyPatch(context.Background(), &rec, EndpointPatch{URL: &raw}); err != nil {
			return
		}
		if rec.URL != strings.TrimSpace(raw) {
			t.Fatalf("URL %q stored as %q", raw, rec.URL)
		}
		var again endpointRecord
		if err := s.applyPatch(context.Background(), &again, EndpointPatch{URL: &rec.URL}); err != nil || again.URL != rec.URL {
			t.Fatalf("stored URL %q is refused when given again: %v", rec.URL, err)
		}
		if !utf8.ValidString(rec.URL) {
			t.Fatalf("URL %q accepted although it is not valid UTF-8", rec.URL)
		}
		data, err := json.Marshal(rec.URL)
		if err != nil {
			t.Fatal(err)
		}
		var back string
		if err := json.Unmarshal(data, &back); err != nil || back != rec.URL {
			t.Fatalf("URL %q comes back from JSON as %q, %v", rec.URL, back, err)
		}
	})
}

// FuzzEndpointHeaders feeds arbitrary custom headers to checkHeaders: it
// never panics, and an accepted header is sent on the wire and read back by
// an HTTP server with the same value (less the optional white space around
// it, which HTTP drops).
func FuzzEndpointHeaders(f *testing.F) {
	f.Add("X-Tenant", "acme", false)
	f.Add("Authorization", "Bearer x", true)
	f.Add("X-Bad", "a\r\nInjected: 1", false)
	f.Add("X Bad", "1", false)
	f.Add("x-ünïcode", "v", false)
	f.Add("X-Value", " \tpadded\t ", false)
	f.Add("X-Value", "caf\xc3\xa9", false)
	f.Add("X-Value", "\xff", false)
	f.Add("Webhook-Id", "x", false)
	f.Fuzz(func(t *testing.T, name, value string, basicAuth bool) {
		if err := checkHeaders(map[string]string{name: value}, basicAuth); err != nil {
			return
		}
		req, err := http.NewRequest(http.MethodPost, "http://example.com/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(name, value)
		var wire bytes.Buffer
		if err := req.Write(&wire); err != nil {
			t.Fatalf("accepted header %q: %q cannot be written: %v", name, value, err)
		}
		got, err := http.ReadRequest(bufio.NewReader(&wire))
		if err != nil {
			t.Fatalf("accepted header %q: %q makes an unreadable request: %v", name, value, err)
		}
		if v, want := got.Header.Get(name), strings.Trim(value, " \t"); v != want {
			t.Fatalf("accepted header %q: %q read back as %q", name, value, v)
		}
	})
}

// FuzzDecodeJSON feeds arbitrary bodies to the strict JSON decoder: it never
// panics, never accepts invalid UTF-8, answers every refusal as a 400, and
// what it accepts re-encodes to JSON that decodes to the same value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"url":"https://example.com/x","description":"orders"}`, "{\"description\":\"a\xffb\"}", `{"a":1}{"b":2}`,
		`{"a":"\ud800"}`, `{"a":[1,2,{"b":null}]}`, `{`, `{"a":1e400}`, "{\"a\":\"\xed\xa0\x80\"}", `{"a":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v map[string]any
		err := unmarshalStrict(body, &v)
		if err != nil {
			if he, ok := err.(*httpError); !ok || he.status != http.StatusBadRequest {
				t.Fatalf("unmarshalStrict(%q) = %v, want a 400 httpError", body, err)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("unmarshalStrict accepted %q, which is not valid UTF-8", body)
		}
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("re-encode %v: %v", v, err)
		}
		var back map[string]any
		if err := unmarshalStrict(data, &back); err != nil || !reflect.DeepEqual(back, v) {
			t.Fatalf("%q decodes to %v, re-encoded %s decodes to %v, %v", body, v, data, back, err)
		}
	})
}
