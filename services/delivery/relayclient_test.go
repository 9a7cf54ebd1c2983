package delivery

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
)

// TestRelayURLBypassesOnlyTheRelayRoute checks that a configured relay base
// on a loopback address is reachable at its relay URLs, while every other
// URL on that address, or the same path on another name for it, is still
// refused by the SSRF policy.
func TestRelayURLBypassesOnlyTheRelayRoute(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]
	const id = "ep_01JEZ6Y7C6Q8W3F0Z6W2Y7C6Q8"
	client := newHTTPClient(Config{LaneConcurrency: 1, RelayURL: srv.URL})
	for _, tc := range []struct {
		url     string
		blocked bool
	}{
		{srv.URL + "/relay/v1/" + id, false},
		{srv.URL + "/relay/v1/" + id + "/more", true},
		{srv.URL + "/relay/v1/../v1/endpoints", true},
		{srv.URL + "/v1/endpoints", true},
		{srv.URL + "/relay/v1/" + id + "?x=1", true},
		{"http://localhost" + port + "/relay/v1/" + id, true}, // same server, another name
		{"http://127.0.0.2" + port + "/relay/v1/" + id, true},
		{"https://" + strings.TrimPrefix(srv.URL, "http://") + "/relay/v1/" + id, true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, tc.url, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			if got := errors.Is(err, ssrf.ErrBlocked); got != tc.blocked {
				t.Errorf("POST %s: blocked = %v (err %v), want %v", tc.url, got, err, tc.blocked)
			}
		})
	}
}

func TestRelayURLValidated(t *testing.T) {
	cfg := Config{RelayURL: "ftp://config:8080"}.withDefaults()
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "PULSEHOOKS_RELAY_URL") {
		t.Errorf("validate() with a bad RelayURL = %v, want an error naming PULSEHOOKS_RELAY_URL", err)
	}
}
