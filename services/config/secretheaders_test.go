package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

func TestSecretHeadersAreSealedAndNeverShown(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	const (
		bearer  = "Bearer tok-8f2c41e9"
		partner = "partner-value-77d1"
		apiKey  = "api-key-value-3b90"
	)
	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/hooks", "headers": map[string]any{
		"X-Team":        "billing",
		"Authorization": bearer,                                           // secret by its name
		"X-Api-Key":     map[string]any{"value": apiKey},                  // secret by its name, object form
		"X-Partner":     map[string]any{"value": partner, "secret": true}, // marked secret
	}})

	wantHeaders := map[string]customHeaderView{
		"X-Team":        {Value: "billing"},
		"Authorization": {Secret: true},
		"X-Api-Key":     {Secret: true},
		"X-Partner":     {Secret: true},
	}
	check := func(what string, status int, data []byte) {
		t.Helper()
		if status != http.StatusOK && status != http.StatusCreated {
			t.Fatalf("%s: status %d: %s", what, status, data)
		}
		for _, plain := range []string{bearer, partner, apiKey} {
			if bytes.Contains(data, []byte(plain)) {
				t.Errorf("%s answer %s shows the secret header value %q", what, data, plain)
			}
		}
		var v struct {
			Headers map[string]json.RawMessage `json:"headers"`
		}
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := string(v.Headers["X-Partner"]); got != `{"secret":true,"set":true}` {
			t.Errorf("%s: X-Partner = %s, want {\"secret\":true,\"set\":true}", what, got)
		}
		if got := decode[endpointView](t, data).Headers; !maps.Equal(got, wantHeaders) {
			t.Errorf("%s: headers = %+v, want %+v", what, got, wantHeaders)
		}
	}
	status, data := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	check("GET endpoint", status, data)
	status, data = h.api(key, http.MethodGet, "/v1/endpoints", nil)
	if status != http.StatusOK || bytes.Contains(data, []byte(partner)) || bytes.Contains(data, []byte(bearer)) {
		t.Errorf("GET /v1/endpoints = %d %s, want 200 without secret header values", status, data)
	}

	// At rest the secret values are sealed; the plain one is readable.
	kv, err := h.nats.JetStream(t).KeyValue(t.Context(), BucketEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(t.Context(), endpointKey("acme", ep.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{bearer, partner, apiKey} {
		if bytes.Contains(entry.Value(), []byte(plain)) {
			t.Errorf("raw KV record contains %q: %s", plain, entry.Value())
		}
	}
	rec := decode[endpointRecord](t, entry.Value())
	if rec.Headers["X-Team"] != "billing" || len(rec.Headers) != 1 || len(rec.SecretHeaders) != 3 {
		t.Errorf("stored headers = %v, sealed %d, want X-Team in clear and 3 sealed", rec.Headers, len(rec.SecretHeaders))
	}
	// A sealed value is bound to its header name.
	if _, err := h.svc.store.open(ep.ID, headerPurpose("X-Api-Key"), rec.SecretHeaders["X-Partner"]); err == nil {
		t.Error("X-Partner's sealed value opened as X-Api-Key's")
	}

	// Delivery (over gRPC) gets every value in clear and the secret names.
	internal, err := h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := internal.GetHeaders(); got["Authorization"] != bearer || got["X-Partner"] != partner || got["X-Api-Key"] != apiKey || got["X-Team"] != "billing" {
		t.Errorf("internal headers = %v, want the clear values", got)
	}
	if got, want := internal.GetSecretHeaders(), []string{"Authorization", "X-Api-Key", "X-Partner"}; !slices.Equal(got, want) {
		t.Errorf("internal secret_headers = %v, want %v", got, want)
	}

	// Sending the answer's headers back keeps the secret values; a new value replaces one.
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"headers": map[string]any{
		"X-Team":        "billing",
		"Authorization": map[string]any{"secret": true, "set": true},
		"X-Api-Key":     map[string]any{"secret": true},
		"X-Partner":     map[string]any{"value": "replaced", "secret": true},
	}})
	check("PATCH keeping secret headers", status, data)
	internal, _ = h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if got := internal.GetHeaders(); got["Authorization"] != bearer || got["X-Api-Key"] != apiKey || got["X-Partner"] != "replaced" {
		t.Errorf("after PATCH internal headers = %v, want Authorization and X-Api-Key kept, X-Partner replaced", got)
	}

	// Leaving a header out of the map removes it.
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"headers": map[string]any{"X-Partner": map[string]any{"secret": true}}})
	if status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", status, data)
	}
	internal, _ = h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if got := internal.GetHeaders(); len(got) != 1 || got["X-Partner"] != "replaced" {
		t.Errorf("after PATCH with only X-Partner, internal headers = %v", got)
	}

	tests := []struct {
		name    string
		headers map[string]any
		field   string
	}{
		{"keep a header that is not secret", map[string]any{"X-Team": map[string]any{"secret": true}}, "headers.X-Team"},
		{"credential name not secret", map[string]any{"X-Auth-Token": map[string]any{"value": "v", "secret": false}}, "headers.X-Auth-Token.secret"},
		{"object without value", map[string]any{"X-Team": map[string]any{}}, "headers.X-Team"},
		{"reserved name, secret", map[string]any{"Webhook-Id": map[string]any{"value": "v", "secret": true}}, "headers.Webhook-Id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, data := h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"headers": tt.headers})
			if got := wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed"); got.Field != tt.field {
				t.Errorf("field = %q, want %q", got.Field, tt.field)
			}
		})
	}
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"headers": map[string]any{"X-A": map[string]any{"value": "v", "colour": "red"}}})
	wantError(t, status, data, http.StatusBadRequest, "invalid_json")
}

func TestCredentialHeadersStoredInClearMigrateOnRead(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/hooks"})
	kv, err := h.nats.JetStream(t).KeyValue(t.Context(), BucketEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	// A record as written before secret headers existed.
	entry, err := kv.Get(t.Context(), endpointKey("acme", ep.ID))
	if err != nil {
		t.Fatal(err)
	}
	rec := decode[endpointRecord](t, entry.Value())
	rec.Headers = map[string]string{"X-Api-Key": "legacy-key-51c2", "X-Team": "billing"}
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(t.Context(), endpointKey("acme", ep.ID), data, entry.Revision()); err != nil {
		t.Fatal(err)
	}
	var status int
	var body []byte
	testenv.WaitFor(t, 5*time.Second, func() error {
		status, body = h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
		if !strings.Contains(string(body), "X-Api-Key") {
			return fmt.Errorf("GET endpoint = %d %s, want the header written to KV", status, body)
		}
		return nil
	})
	if status != http.StatusOK || strings.Contains(string(body), "legacy-key-51c2") || !strings.Contains(string(body), `"X-Api-Key":{"secret":true,"set":true}`) {
		t.Errorf("GET endpoint = %d %s, want X-Api-Key shown as a set secret", status, body)
	}
	internal, _ := h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if internal.GetHeaders()["X-Api-Key"] != "legacy-key-51c2" || !slices.Contains(internal.GetSecretHeaders(), "X-Api-Key") {
		t.Errorf("internal endpoint headers %v, secret %v, want the legacy value, secret", internal.GetHeaders(), internal.GetSecretHeaders())
	}

	// The next write seals it, keeping the value.
	if status, body := h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"description": "migrated"}); status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", status, body)
	}
	entry, err = kv.Get(t.Context(), endpointKey("acme", ep.ID))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(entry.Value(), []byte("legacy-key-51c2")) {
		t.Errorf("after a write the KV record still holds the credential in clear: %s", entry.Value())
	}
	internal, _ = h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if internal.GetHeaders()["X-Api-Key"] != "legacy-key-51c2" || internal.GetHeaders()["X-Team"] != "billing" {
		t.Errorf("after migration internal headers = %v, want both values kept", internal.GetHeaders())
	}
}
