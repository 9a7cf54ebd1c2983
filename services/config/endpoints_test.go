package config

import (
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
)

func TestEndpointCRUD(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")

	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/hooks", "description": "orders"})
	want := endpointView{
		ID: ep.ID, URL: "https://example.com/hooks", Description: "orders",
		EventTypes: []string{}, Headers: map[string]customHeaderView{}, Enabled: true, TimeoutSeconds: 15,
		CreatedAt: ep.CreatedAt, UpdatedAt: ep.UpdatedAt,
	}
	if !reflect.DeepEqual(ep, want) {
		t.Errorf("created endpoint = %+v, want defaults %+v", ep, want)
	}
	if !ids.Valid(ids.Endpoint, ep.ID) {
		t.Errorf("endpoint id %q is not an ep_ id", ep.ID)
	}

	status, data := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	if status != http.StatusOK || !reflect.DeepEqual(decode[endpointView](t, data), ep) {
		t.Errorf("get endpoint: status %d: %s, want 200 with %+v", status, data, ep)
	}
	if strings.Contains(string(data), "whsec_") || strings.Contains(string(data), `"secret`) {
		t.Errorf("endpoint JSON %s carries the secret", data)
	}

	patch := map[string]any{
		"url":             "http://127.0.0.1:9999/in",
		"event_types":     []string{"job.completed", "job.failed"},
		"headers":         map[string]string{"X-Team": "billing"},
		"basic_auth":      map[string]string{"username": "hook", "password": "s3cret-pass"},
		"enabled":         false,
		"timeout_seconds": 5,
		"rate_limit":      20,
	}
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, patch)
	if status != http.StatusOK {
		t.Fatalf("patch endpoint: status %d: %s", status, data)
	}
	if bytes.Contains(data, []byte("s3cret-pass")) {
		t.Errorf("patch response %s contains the basic-auth password", data)
	}
	got := decode[endpointView](t, data)
	want = endpointView{
		ID: ep.ID, URL: "http://127.0.0.1:9999/in", Description: "orders",
		EventTypes: []string{"job.completed", "job.failed"}, Headers: map[string]customHeaderView{"X-Team": {Value: "billing"}},
		BasicAuth: &basicAuthView{Username: "hook", PasswordSet: true}, Enabled: false, TimeoutSeconds: 5, RateLimit: 20,
		CreatedAt: ep.CreatedAt, UpdatedAt: got.UpdatedAt,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("patched endpoint = %+v, want %+v", got, want)
	}

	// Changing the username without a password keeps the password.
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"basic_auth": map[string]string{"username": "hook2"}})
	if status != http.StatusOK {
		t.Fatalf("patch username: status %d: %s", status, data)
	}
	if ba := decode[endpointView](t, data).BasicAuth; ba == nil || ba.Username != "hook2" || !ba.PasswordSet {
		t.Errorf("basic_auth after username change = %+v, want hook2 with password set", ba)
	}
	pw, err := h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if err != nil || pw.GetBasicAuth().GetPassword() != "s3cret-pass" {
		t.Errorf("stored password after username change = %q (%v), want the old one kept", pw.GetBasicAuth().GetPassword(), err)
	}

	// null removes basic auth; empty lists and maps clear filters and headers.
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, `{"basic_auth":null,"event_types":[],"headers":{},"enabled":true}`)
	if status != http.StatusOK {
		t.Fatalf("patch clear: status %d: %s", status, data)
	}
	got = decode[endpointView](t, data)
	if got.BasicAuth != nil || len(got.EventTypes) != 0 || len(got.Headers) != 0 || !got.Enabled {
		t.Errorf("after clearing = %+v, want no basic auth, no filter, no headers, enabled", got)
	}

	// Pagination over three endpoints.
	h.newEndpoint(key, map[string]any{"url": "https://example.com/2"})
	h.newEndpoint(key, map[string]any{"url": "https://example.com/3"})
	var seen []string
	iterator := ""
	for page := 0; ; page++ {
		status, data = h.api(key, http.MethodGet, "/v1/endpoints?limit=2&iterator="+iterator, nil)
		if status != http.StatusOK {
			t.Fatalf("list page %d: status %d: %s", page, status, data)
		}
		p := decode[listPage[endpointView]](t, data)
		for _, e := range p.Data {
			seen = append(seen, e.ID)
		}
		if p.Done {
			break
		}
		if page > 3 || p.Iterator == nil {
			t.Fatalf("pagination does not end: page %d = %+v", page, p)
		}
		iterator = *p.Iterator
	}
	if len(seen) != 3 || seen[0] != ep.ID || seen[0] >= seen[1] || seen[1] >= seen[2] {
		t.Errorf("paged ids = %v, want the 3 endpoints in id order", seen)
	}

	status, data = h.api(key, http.MethodDelete, "/v1/endpoints/"+ep.ID, nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete: status %d: %s", status, data)
	}
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		status, data = h.api(key, method, "/v1/endpoints/"+ep.ID, nil)
		wantError(t, status, data, http.StatusNotFound, "not_found")
	}
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"description": "x"})
	wantError(t, status, data, http.StatusNotFound, "not_found")
}

func TestEndpointCreateValidation(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	ok := func(extra map[string]any) map[string]any {
		b := map[string]any{"url": "https://example.com/hook"}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	auth := map[string]string{"username": "u", "password": "p"}
	tests := []struct {
		name        string
		body        any
		contentType string
		status      int
		code        string
		field       string
		inMessage   string
	}{
		{name: "missing url", body: map[string]any{"description": "x"}, status: 422, code: "validation_failed", field: "url"},
		{name: "not a URL", body: ok(map[string]any{"url": "::not a url"}), status: 422, code: "validation_failed", field: "url"},
		{name: "ftp scheme", body: ok(map[string]any{"url": "ftp://example.com/x"}), status: 422, code: "validation_failed", field: "url", inMessage: "scheme"},
		{name: "user info", body: ok(map[string]any{"url": "https://u:p@example.com/x"}), status: 422, code: "validation_failed", field: "url"},
		{name: "private address", body: ok(map[string]any{"url": "http://10.1.2.3/hook"}), status: 422, code: "validation_failed", field: "url", inMessage: "10.1.2.3"},
		{name: "metadata address", body: ok(map[string]any{"url": "http://169.254.169.254/latest/meta-data"}), status: 422, code: "validation_failed", field: "url", inMessage: "169.254"},
		{name: "ipv6 private", body: ok(map[string]any{"url": "http://[fd00::1]/hook"}), status: 422, code: "validation_failed", field: "url"},
		{name: "ipv6 loopback with zone", body: ok(map[string]any{"url": "http://[::ffff:127.0.0.1%25lo]:8080/"}), status: 422, code: "validation_failed", field: "url", inMessage: "IPv6 zone identifiers are not allowed"},
		{name: "ipv6 zone index", body: ok(map[string]any{"url": "http://[::1%251]/"}), status: 422, code: "validation_failed", field: "url", inMessage: "zone"},
		{name: "link-local with zone", body: ok(map[string]any{"url": "http://[fe80::1%25lo]/"}), status: 422, code: "validation_failed", field: "url", inMessage: "zone"},
		{name: "AWS IPv6 metadata with zone", body: ok(map[string]any{"url": "http://[fd00:ec2::254%25eth0]/"}), status: 422, code: "validation_failed", field: "url", inMessage: "zone"},
		{name: "IPv4-compatible loopback", body: ok(map[string]any{"url": "http://[::7f00:1]/"}), status: 422, code: "validation_failed", field: "url"},
		{name: "NAT64 private", body: ok(map[string]any{"url": "http://[64:ff9b::a00:1]/"}), status: 422, code: "validation_failed", field: "url", inMessage: "10.0.0.1"},
		{name: "decimal IPv4", body: ok(map[string]any{"url": "http://2130706433/"}), status: 422, code: "validation_failed", field: "url", inMessage: "non-canonical"},
		{name: "ip6-localhost (only 127/8 is allowed here)", body: ok(map[string]any{"url": "http://ip6-localhost./"}), status: 422, code: "validation_failed", field: "url", inMessage: "::1"},
		{name: "metadata name", body: ok(map[string]any{"url": "http://metadata.google.internal/"}), status: 422, code: "validation_failed", field: "url", inMessage: "169.254.169.254"},
		{name: "description not UTF-8", body: "{\"url\":\"https://example.com/x\",\"description\":\"a\xffb\"}", status: 400, code: "invalid_json", inMessage: "UTF-8"},
		{name: "header value not UTF-8", body: "{\"url\":\"https://example.com/x\",\"headers\":{\"X-A\":\"\xc3\x28\"}}", status: 400, code: "invalid_json", inMessage: "UTF-8"},
		{name: "url not UTF-8", body: "{\"url\":\"https://example.com/\xed\xa0\x80\"}", status: 400, code: "invalid_json", inMessage: "UTF-8"},
		{name: "unknown event type", body: ok(map[string]any{"event_types": []string{"job.exploded"}}), status: 422, code: "validation_failed", field: "event_types[0]", inMessage: "catalog"},
		{name: "malformed event type", body: ok(map[string]any{"event_types": []string{"Job Completed"}}), status: 422, code: "validation_failed", field: "event_types[0]"},
		{name: "event type twice", body: ok(map[string]any{"event_types": []string{"job.failed", "job.failed"}}), status: 422, code: "validation_failed", field: "event_types[1]"},
		{name: "header webhook-id", body: ok(map[string]any{"headers": map[string]string{"Webhook-Id": "x"}}), status: 422, code: "validation_failed", field: "headers.Webhook-Id"},
		{name: "header webhook-signature", body: ok(map[string]any{"headers": map[string]string{"webhook-signature": "x"}}), status: 422, code: "validation_failed"},
		{name: "header content-type", body: ok(map[string]any{"headers": map[string]string{"Content-Type": "text/plain"}}), status: 422, code: "validation_failed"},
		{name: "header content-length", body: ok(map[string]any{"headers": map[string]string{"content-length": "1"}}), status: 422, code: "validation_failed"},
		{name: "header host", body: ok(map[string]any{"headers": map[string]string{"Host": "evil"}}), status: 422, code: "validation_failed"},
		{name: "header user-agent", body: ok(map[string]any{"headers": map[string]string{"User-Agent": "x"}}), status: 422, code: "validation_failed"},
		{name: "header connection", body: ok(map[string]any{"headers": map[string]string{"Connection": "close"}}), status: 422, code: "validation_failed", inMessage: "hop-by-hop"},
		{name: "header keep-alive", body: ok(map[string]any{"headers": map[string]string{"Keep-Alive": "1"}}), status: 422, code: "validation_failed"},
		{name: "header te", body: ok(map[string]any{"headers": map[string]string{"TE": "trailers"}}), status: 422, code: "validation_failed"},
		{name: "header trailer", body: ok(map[string]any{"headers": map[string]string{"Trailer": "x"}}), status: 422, code: "validation_failed"},
		{name: "header transfer-encoding", body: ok(map[string]any{"headers": map[string]string{"Transfer-Encoding": "chunked"}}), status: 422, code: "validation_failed"},
		{name: "header upgrade", body: ok(map[string]any{"headers": map[string]string{"Upgrade": "h2c"}}), status: 422, code: "validation_failed"},
		{name: "header proxy-authorization", body: ok(map[string]any{"headers": map[string]string{"Proxy-Authorization": "x"}}), status: 422, code: "validation_failed"},
		{name: "authorization with basic auth", body: ok(map[string]any{"headers": map[string]string{"Authorization": "Bearer x"}, "basic_auth": auth}), status: 422, code: "validation_failed", inMessage: "basic_auth"},
		{name: "header name with space", body: ok(map[string]any{"headers": map[string]string{"X Bad": "1"}}), status: 422, code: "validation_failed"},
		{name: "header value with newline", body: ok(map[string]any{"headers": map[string]string{"X-Ok": "a\r\nInjected: 1"}}), status: 422, code: "validation_failed"},
		{name: "header twice in different case", body: ok(map[string]any{"headers": map[string]string{"X-A": "1", "x-a": "2"}}), status: 422, code: "validation_failed"},
		{name: "timeout 0", body: ok(map[string]any{"timeout_seconds": 0}), status: 422, code: "validation_failed", field: "timeout_seconds"},
		{name: "timeout 31", body: ok(map[string]any{"timeout_seconds": 31}), status: 422, code: "validation_failed", field: "timeout_seconds"},
		{name: "timeout as string", body: ok(map[string]any{"timeout_seconds": "5"}), status: 400, code: "invalid_json", inMessage: "timeout_seconds"},
		{name: "timeout fractional", body: ok(map[string]any{"timeout_seconds": 2.5}), status: 400, code: "invalid_json"},
		{name: "negative rate limit", body: ok(map[string]any{"rate_limit": -1}), status: 422, code: "validation_failed", field: "rate_limit"},
		{name: "secret without prefix", body: ok(map[string]any{"secret": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}), status: 422, code: "validation_failed", field: "secret"},
		{name: "secret too short", body: ok(map[string]any{"secret": "whsec_c2hvcnQ="}), status: 422, code: "validation_failed", field: "secret"},
		{name: "secret not base64", body: ok(map[string]any{"secret": "whsec_!!!not-base64!!!"}), status: 422, code: "validation_failed", field: "secret"},
		{name: "username with colon", body: ok(map[string]any{"basic_auth": map[string]string{"username": "a:b", "password": "p"}}), status: 422, code: "validation_failed", field: "basic_auth.username"},
		{name: "basic auth without password", body: ok(map[string]any{"basic_auth": map[string]string{"username": "a"}}), status: 422, code: "validation_failed", field: "basic_auth.password"},
		{name: "description too long", body: ok(map[string]any{"description": strings.Repeat("d", 1025)}), status: 422, code: "validation_failed", field: "description"},
		{name: "malformed JSON", body: `{"url": "https://example.com"`, status: 400, code: "invalid_json"},
		{name: "unknown field", body: `{"url":"https://example.com/x","filter":["job.failed"]}`, status: 400, code: "unknown_field", inMessage: "filter"},
		{name: "unknown nested field", body: `{"url":"https://example.com/x","basic_auth":{"username":"u","password":"p","realm":"r"}}`, status: 400, code: "unknown_field"},
		{name: "oversized body", body: `{"url":"https://example.com/x","description":"` + strings.Repeat("x", 65<<10) + `"}`, status: 413, code: "body_too_large"},
		{name: "not JSON content type", body: `url=https://example.com`, contentType: "application/x-www-form-urlencoded", status: 415, code: "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"X-Api-Key": key}
			if tt.contentType != "" {
				hdr["Content-Type"] = tt.contentType
			}
			status, data, _ := h.request(http.MethodPost, "/v1/endpoints", tt.body, hdr)
			got := wantError(t, status, data, tt.status, tt.code)
			if tt.field != "" && got.Field != tt.field {
				t.Errorf("error field = %q, want %q (message %q)", got.Field, tt.field, got.Message)
			}
			if tt.inMessage != "" && !strings.Contains(got.Message, tt.inMessage) {
				t.Errorf("error message %q does not mention %q", got.Message, tt.inMessage)
			}
		})
	}
	status, data := h.api(key, http.MethodGet, "/v1/endpoints", nil)
	if got := decode[listPage[endpointView]](t, data).Data; status != http.StatusOK || len(got) != 0 {
		t.Errorf("endpoints after refused creates: status %d, %+v; want none", status, got)
	}

	// The allowlisted loopback range and a full valid endpoint are accepted.
	full := h.newEndpoint(key, map[string]any{
		"url": "http://localhost:8000/hook", "event_types": []string{"job.completed"},
		"headers": map[string]string{"X-Api-Version": "2", "Authorization-Extra": "y"}, "basic_auth": auth,
		"timeout_seconds": 30, "rate_limit": 0, "enabled": false,
		"secret": "whsec_" + strings.Repeat("QUFB", 8),
	})
	if full.TimeoutSeconds != 30 || full.Enabled || full.BasicAuth == nil {
		t.Errorf("full endpoint = %+v, want timeout 30, disabled, basic auth", full)
	}
}

func TestEndpointPatchValidationChangesNothing(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	ep := h.newEndpoint(key, map[string]any{
		"url": "https://example.com/hook", "event_types": []string{"job.completed"},
		"headers": map[string]string{"X-Team": "a"}, "basic_auth": map[string]string{"username": "u", "password": "p"},
	})
	_, before := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	tests := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"private url", map[string]any{"url": "http://192.168.1.1/"}, 422, "validation_failed"},
		{"empty url", map[string]any{"url": ""}, 422, "validation_failed"},
		{"unknown event type", map[string]any{"event_types": []string{"nope.nope"}}, 422, "validation_failed"},
		{"authorization header while basic auth is set", map[string]any{"headers": map[string]string{"Authorization": "x"}}, 422, "validation_failed"},
		{"reserved header", map[string]any{"headers": map[string]string{"webhook-timestamp": "1"}}, 422, "validation_failed"},
		{"timeout", map[string]any{"timeout_seconds": 100}, 422, "validation_failed"},
		{"rate limit", map[string]any{"rate_limit": 1_000_000}, 422, "validation_failed"},
		{"basic auth not an object", map[string]any{"basic_auth": "u:p"}, 400, "invalid_json"},
		{"basic auth unknown field", `{"basic_auth":{"username":"u","pass":"p"}}`, 400, "invalid_json"},
		{"secret is not patchable", map[string]any{"secret": "whsec_" + strings.Repeat("QUFB", 8)}, 400, "unknown_field"},
		{"malformed", `{"url":`, 400, "invalid_json"},
		{"oversized", `{"description":"` + strings.Repeat("x", 65<<10) + `"}`, 413, "body_too_large"},
		{"valid field then invalid one", map[string]any{"description": "changed", "timeout_seconds": 0}, 422, "validation_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, data := h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, tt.body)
			wantError(t, status, data, tt.status, tt.code)
			_, after := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
			if !bytes.Equal(after, before) {
				t.Errorf("endpoint changed by a refused patch:\n got %s\nwant %s", after, before)
			}
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	h := startService(t)
	_, keyA := h.newTenant("tenant-a")
	_, keyB := h.newTenant("tenant-b")
	epA := h.newEndpoint(keyA, map[string]any{"url": "https://a.example.com/hook"})
	_, before := h.api(keyA, http.MethodGet, "/v1/endpoints/"+epA.ID, nil)
	_, secretBefore := h.api(keyA, http.MethodGet, "/v1/endpoints/"+epA.ID+"/secret", nil)

	requests := []struct {
		method string
		path   string
		body   any
	}{
		{http.MethodGet, "/v1/endpoints/" + epA.ID, nil},
		{http.MethodPatch, "/v1/endpoints/" + epA.ID, map[string]any{"url": "https://b.example.com/steal"}},
		{http.MethodDelete, "/v1/endpoints/" + epA.ID, nil},
		{http.MethodGet, "/v1/endpoints/" + epA.ID + "/secret", nil},
		{http.MethodPost, "/v1/endpoints/" + epA.ID + "/secret/rotate", map[string]any{"key": "whsec_" + strings.Repeat("QkJC", 8)}},
	}
	for _, rq := range requests {
		t.Run(rq.method+" "+rq.path, func(t *testing.T) {
			status, data := h.api(keyB, rq.method, rq.path, rq.body)
			wantError(t, status, data, http.StatusNotFound, "not_found")
		})
	}
	status, data := h.api(keyB, http.MethodGet, "/v1/endpoints", nil)
	if got := decode[listPage[endpointView]](t, data).Data; status != http.StatusOK || len(got) != 0 {
		t.Errorf("tenant B lists %+v, want none of tenant A's endpoints", got)
	}
	_, after := h.api(keyA, http.MethodGet, "/v1/endpoints/"+epA.ID, nil)
	_, secretAfter := h.api(keyA, http.MethodGet, "/v1/endpoints/"+epA.ID+"/secret", nil)
	if !bytes.Equal(after, before) || !bytes.Equal(secretAfter, secretBefore) {
		t.Errorf("tenant A's endpoint changed by tenant B:\n got %s %s\nwant %s %s", after, secretAfter, before, secretBefore)
	}
}

func TestSecretReadAndRotate(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	given := "whsec_" + strings.Repeat("MDEy", 8) // 24 bytes
	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/hook", "secret": given})

	status, data := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID+"/secret", nil)
	if got := decode[secretView](t, data).Key; status != http.StatusOK || got != given {
		t.Fatalf("secret = %d %q, want 200 %q", status, got, given)
	}

	generated := h.newEndpoint(key, map[string]any{"url": "https://example.com/other"})
	_, data = h.api(key, http.MethodGet, "/v1/endpoints/"+generated.ID+"/secret", nil)
	if got := decode[secretView](t, data).Key; checkSigningSecret("key", got) != nil || len(got) != len("whsec_")+44 {
		t.Errorf("generated secret %q, want whsec_ + base64 of 32 bytes", got)
	}

	start := time.Now()
	status, data = h.api(key, http.MethodPost, "/v1/endpoints/"+ep.ID+"/secret/rotate", nil)
	if status != http.StatusOK {
		t.Fatalf("rotate: status %d: %s", status, data)
	}
	rotated := decode[secretView](t, data).Key
	if rotated == given || checkSigningSecret("key", rotated) != nil {
		t.Fatalf("rotated secret %q: want a new valid secret", rotated)
	}
	_, data = h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID+"/secret", nil)
	if got := decode[secretView](t, data).Key; got != rotated {
		t.Errorf("secret after rotate = %q, want %q", got, rotated)
	}
	internal, err := h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	secrets := internal.GetSecrets()
	if len(secrets) != 2 || secrets[0].GetKey() != rotated || secrets[0].GetExpiresAt() != nil || secrets[1].GetKey() != given {
		t.Fatalf("secrets after rotate = %v, want the new current one first, then the old one", secrets)
	}
	if exp := secrets[1].GetExpiresAt().AsTime(); exp.Before(start.Add(24*time.Hour-time.Minute)) || exp.After(time.Now().Add(24*time.Hour+time.Minute)) {
		t.Errorf("old secret expires at %v, want about 24h from now", exp)
	}

	chosen := "whsec_" + strings.Repeat("Nzg5", 16) // 48 bytes
	status, data = h.api(key, http.MethodPost, "/v1/endpoints/"+ep.ID+"/secret/rotate", map[string]any{"key": chosen, "grace_period_seconds": 0})
	if status != http.StatusOK || decode[secretView](t, data).Key != chosen {
		t.Fatalf("rotate to a chosen key with no grace: status %d: %s", status, data)
	}
	internal, _ = h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if got := internal.GetSecrets(); len(got) != 2 || got[0].GetKey() != chosen || got[1].GetKey() != given {
		t.Errorf("secrets after a no-grace rotate = %v, want %q then %q still in its grace", got, chosen, given)
	}

	bad := []struct {
		name string
		body any
		code string
	}{
		{"grace over 7 days", map[string]any{"grace_period_seconds": 7*86400 + 1}, "validation_failed"},
		{"negative grace", map[string]any{"grace_period_seconds": -1}, "validation_failed"},
		{"huge grace", map[string]any{"grace_period_seconds": int64(1) << 62}, "validation_failed"},
		{"bad key", map[string]any{"key": "whsec_tooshort"}, "validation_failed"},
		{"unknown field", map[string]any{"secret": chosen}, "unknown_field"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			status, data := h.api(key, http.MethodPost, "/v1/endpoints/"+ep.ID+"/secret/rotate", tt.body)
			if tt.code == "unknown_field" {
				wantError(t, status, data, http.StatusBadRequest, tt.code)
			} else {
				wantError(t, status, data, http.StatusUnprocessableEntity, tt.code)
			}
		})
	}
	after, _ := h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if after.GetRevision() != internal.GetRevision() {
		t.Errorf("endpoint revision went from %d to %d after refused rotations", internal.GetRevision(), after.GetRevision())
	}
}
