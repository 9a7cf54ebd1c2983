package relay

import (
	"net/http"
	"testing"
)

func TestCleanHeaders(t *testing.T) {
	in := http.Header{
		"Webhook-Id":        {"msg_1"},
		"Webhook-Signature": {"v1,abc"},
		"Content-Type":      {"application/json"},
		"Connection":        {"keep-alive, X-Hop"},
		"X-Hop":             {"1"},
		"Content-Length":    {"12"},
		"Transfer-Encoding": {"chunked"},
		"Accept-Encoding":   {"gzip"},
		"Host":              {"config:8080"},
		"X-Custom":          {"kept"},
	}
	got := CleanHeaders(in)
	for _, tc := range []struct {
		name string
		kept bool
	}{
		{"Webhook-Id", true}, {"Webhook-Signature", true}, {"Content-Type", true}, {"X-Custom", true},
		{"Connection", false}, {"X-Hop", false}, {"Content-Length", false}, {"Transfer-Encoding", false},
		{"Accept-Encoding", false}, {"Host", false},
	} {
		if _, ok := got[tc.name]; ok != tc.kept {
			t.Errorf("CleanHeaders kept %s = %v, want %v", tc.name, ok, tc.kept)
		}
	}
	if in.Get("Connection") == "" {
		t.Errorf("CleanHeaders changed its argument")
	}
	if CleanHeaders(nil) == nil {
		t.Errorf("CleanHeaders(nil) = nil, want an empty header")
	}
}
