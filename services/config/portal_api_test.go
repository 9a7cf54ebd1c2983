package config

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

// portalSession redeems a portal link and returns the session's cookie
// header and CSRF token.
func (h *harness) portalSession(key string) (cookie map[string]string, csrf string) {
	h.t.Helper()
	status, data, hdr := h.request(http.MethodGet, h.portalLink(key), nil, nil)
	if status != http.StatusSeeOther {
		h.t.Fatalf("redeem link: status %d: %s", status, data)
	}
	cookie = map[string]string{"Cookie": portal.SessionCookie + "=" + sessionFrom(h.t, hdr).Value}
	status, data, _ = h.request(http.MethodGet, "/portal/api/session", nil, cookie)
	if status != http.StatusOK {
		h.t.Fatalf("GET /portal/api/session: status %d: %s", status, data)
	}
	s := decode[portal.SessionView](h.t, data)
	if s.CSRFToken == "" {
		h.t.Fatalf("session %s has no CSRF token", data)
	}
	return cookie, s.CSRFToken
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestPortalAPIUsesTheSessionTenant(t *testing.T) {
	h := startService(t)
	_, keyA := h.newTenant("tenant-a")
	_, keyB := h.newTenant("tenant-b")
	epB := h.newEndpoint(keyB, map[string]any{"url": "https://example.com/b"})
	cookie, csrf := h.portalSession(keyA)
	write := with(cookie, portal.CSRFHeader, csrf)

	status, data, hdr := h.request(http.MethodPost, "/portal/api/endpoints", map[string]any{
		"url": "https://example.com/a", "description": "<script>x</script>", "event_types": []string{"job.completed"},
	}, write)
	if status != http.StatusCreated {
		t.Fatalf("create through the portal: status %d: %s", status, data)
	}
	epA := decode[endpointView](t, data)
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("portal API CSP = %q", csp)
	}
	status, data = h.api(keyA, http.MethodGet, "/v1/endpoints/"+epA.ID, nil)
	if status != http.StatusOK || decode[endpointView](t, data).Description != "<script>x</script>" {
		t.Errorf("endpoint made in the portal, read with tenant A's key: status %d: %s", status, data)
	}

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		header map[string]string
		status int
		code   string
	}{
		{"list", http.MethodGet, "/portal/api/endpoints", nil, cookie, http.StatusOK, ""},
		{"another tenant's endpoint", http.MethodGet, "/portal/api/endpoints/" + epB.ID, nil, cookie, http.StatusNotFound, "not_found"},
		{"another tenant's secret", http.MethodGet, "/portal/api/endpoints/" + epB.ID + "/secret", nil, cookie, http.StatusNotFound, "not_found"},
		{"delete another tenant's endpoint", http.MethodDelete, "/portal/api/endpoints/" + epB.ID, nil, write, http.StatusNotFound, "not_found"},
		{"write without CSRF token", http.MethodPatch, "/portal/api/endpoints/" + epA.ID, map[string]any{"enabled": false}, cookie, http.StatusForbidden, "csrf_failed"},
		{"write with a wrong CSRF token", http.MethodPatch, "/portal/api/endpoints/" + epA.ID, map[string]any{"enabled": false}, with(cookie, portal.CSRFHeader, "nope"), http.StatusForbidden, "csrf_failed"},
		{"cross-site write", http.MethodPatch, "/portal/api/endpoints/" + epA.ID, map[string]any{"enabled": false}, with(write, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden, "csrf_failed"},
		{"write from another origin", http.MethodPatch, "/portal/api/endpoints/" + epA.ID, map[string]any{"enabled": false}, with(write, "Origin", "https://evil.example"), http.StatusForbidden, "csrf_failed"},
		{"no session", http.MethodGet, "/portal/api/endpoints", nil, nil, http.StatusUnauthorized, "unauthorized"},
		{"unknown session", http.MethodGet, "/portal/api/session", nil, map[string]string{"Cookie": portal.SessionCookie + "=" + strings.Repeat("C", portalTokenLen)}, http.StatusUnauthorized, "unauthorized"},
		{"API key is not a session", http.MethodGet, "/portal/api/endpoints", nil, map[string]string{"X-Api-Key": keyA}, http.StatusUnauthorized, "unauthorized"},
		{"same-origin write", http.MethodPatch, "/portal/api/endpoints/" + epA.ID, map[string]any{"enabled": false}, with(write, "Sec-Fetch-Site", "same-origin", "Origin", h.svc.PublicURL().String()), http.StatusOK, ""},
		{"unknown route", http.MethodGet, "/portal/api/nothing", nil, cookie, http.StatusNotFound, "not_found"},
		{"test send of an unknown type", http.MethodPost, "/portal/api/endpoints/" + epA.ID + "/test", map[string]any{"event_type": "no.such"}, write, http.StatusUnprocessableEntity, "validation_failed"},
		{"test send of a non-object payload", http.MethodPost, "/portal/api/endpoints/" + epA.ID + "/test", map[string]any{"event_type": "job.completed", "payload": []int{1}}, write, http.StatusUnprocessableEntity, "validation_failed"},
		{"test send to another tenant's endpoint", http.MethodPost, "/portal/api/endpoints/" + epB.ID + "/test", map[string]any{}, write, http.StatusNotFound, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, data, _ := h.request(tt.method, tt.path, tt.body, tt.header)
			if tt.code == "" {
				if status != tt.status {
					t.Fatalf("status %d, want %d: %s", status, tt.status, data)
				}
				return
			}
			wantError(t, status, data, tt.status, tt.code)
		})
	}
}

func TestPortalAssets(t *testing.T) {
	h := startService(t)
	for _, tt := range []struct {
		path, wantType string
		status         int
	}{
		{"/portal/static/app.js", "text/javascript", http.StatusOK},
		{"/portal/static/logs.js", "text/javascript", http.StatusOK},
		{"/portal/static/portal.css", "text/css", http.StatusOK},
		{"/portal/static/portal.html", "application/json", http.StatusNotFound},
	} {
		status, data, hdr := h.request(http.MethodGet, tt.path, nil, nil)
		if status != tt.status || !strings.HasPrefix(hdr.Get("Content-Type"), tt.wantType) {
			t.Errorf("%s: status %d, type %q (%d bytes); want %d %s", tt.path, status, hdr.Get("Content-Type"), len(data), tt.status, tt.wantType)
		}
	}
}

func TestPortalLogoutEndsTheSession(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	cookie, csrf := h.portalSession(key)
	other, otherCSRF := h.portalSession(key)

	// Without the CSRF token, or from another site, logout is refused and
	// the session lives on.
	for _, hdr := range []map[string]string{
		cookie,
		with(cookie, portal.CSRFHeader, "wrong"),
		with(cookie, portal.CSRFHeader, csrf, "Sec-Fetch-Site", "cross-site"),
	} {
		status, data, _ := h.request(http.MethodPost, "/portal/api/logout", nil, hdr)
		wantError(t, status, data, http.StatusForbidden, "csrf_failed")
	}
	if status, data, _ := h.request(http.MethodGet, "/portal/api/endpoints", nil, cookie); status != http.StatusOK {
		t.Fatalf("after refused logouts: GET endpoints %d %s, want 200", status, data)
	}

	status, data, hdr := h.request(http.MethodPost, "/portal/api/logout", nil, with(cookie, portal.CSRFHeader, csrf))
	if status != http.StatusNoContent {
		t.Fatalf("logout: %d %s, want 204", status, data)
	}
	if c := sessionFrom(t, hdr); c.Value != "" || c.MaxAge >= 0 || !c.HttpOnly {
		t.Errorf("logout cookie = %+v, want it cleared (empty, MaxAge < 0, HttpOnly)", c)
	}
	for _, rt := range []struct{ method, path string }{
		{http.MethodGet, "/portal/api/session"},
		{http.MethodGet, "/portal/api/endpoints"},
		{http.MethodPost, "/portal/api/logout"},
	} {
		status, data, _ := h.request(rt.method, rt.path, nil, with(cookie, portal.CSRFHeader, csrf))
		wantError(t, status, data, http.StatusUnauthorized, "unauthorized")
	}
	// The old cookie is gone from the store, not just from the browser.
	kv, err := h.nats.JetStream(t).KeyValue(t.Context(), BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(t.Context(), hashSecret(strings.TrimPrefix(cookie["Cookie"], portal.SessionCookie+"="))); err == nil {
		t.Error("the session is still in the session store after logout")
	}
	// Another session of the same tenant is not touched.
	if status, data, _ := h.request(http.MethodGet, "/portal/api/endpoints", nil, with(other, portal.CSRFHeader, otherCSRF)); status != http.StatusOK {
		t.Errorf("the other session after logout: %d %s, want 200", status, data)
	}
}
