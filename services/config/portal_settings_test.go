package config

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

func TestPortalSettingsChecked(t *testing.T) {
	good, err := PortalSettings{
		ProductName: "  Pulse Hooks  ", LogoURL: "https://cdn.example.com/logo.svg", PrimaryColor: "#7C3AED", Theme: "Dark",
		FrameAncestors: []string{"https://Dash.Example.com:443", "http://localhost:3000/"},
	}.normalize(apiSettingNames)
	if err != nil {
		t.Fatal(err)
	}
	want := PortalSettings{ProductName: "Pulse Hooks", LogoURL: "https://cdn.example.com/logo.svg", PrimaryColor: "#7C3AED", Theme: "dark",
		FrameAncestors: []string{"https://dash.example.com", "http://localhost:3000"}}
	if got := good; got.ProductName != want.ProductName || got.Theme != want.Theme || strings.Join(got.FrameAncestors, " ") != strings.Join(want.FrameAncestors, " ") {
		t.Errorf("normalized = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		name  string
		in    PortalSettings
		field string
		says  string
	}{
		{"long name", PortalSettings{ProductName: strings.Repeat("x", 65)}, "portal.product_name", "at most 64 characters"},
		{"logo over http", PortalSettings{LogoURL: "http://cdn.example.com/logo.png"}, "portal.logo_url", "must use https"},
		{"relative logo", PortalSettings{LogoURL: "/logo.png"}, "portal.logo_url", "absolute https:// URL"},
		{"colour by name", PortalSettings{PrimaryColor: "purple"}, "portal.primary_color", "#rgb or #rrggbb"},
		{"theme", PortalSettings{Theme: "sepia"}, "portal.theme", "light, dark or auto"},
		{"origin with a path", PortalSettings{FrameAncestors: []string{"https://dash.example.com/app"}}, "portal.frame_ancestors", "only scheme, host and port"},
		{"wildcard origin", PortalSettings{FrameAncestors: []string{"https://*.example.com"}}, "portal.frame_ancestors", "not an origin"},
		{"keyword", PortalSettings{FrameAncestors: []string{"'self'"}}, "portal.frame_ancestors", "not an origin"},
	} {
		_, err := tc.in.normalize(apiSettingNames)
		ve, ok := err.(*ValidationError)
		if !ok || ve.Field != tc.field || !strings.Contains(ve.Message, tc.says) {
			t.Errorf("%s: error %v, want a validation error on %s saying %q", tc.name, err, tc.field, tc.says)
		}
	}
	if _, err := (Config{Portal: PortalSettings{Theme: "sepia"}}).withDefaults(); err == nil || !strings.Contains(err.Error(), "PULSEHOOKS_PORTAL_THEME") {
		t.Errorf("a bad deployment theme: %v, want an error naming PULSEHOOKS_PORTAL_THEME", err)
	}
}

func TestPortalBrandingAndEmbedding(t *testing.T) {
	h := startService(t, func(c *Config) {
		c.Portal = PortalSettings{ProductName: "Acme Cloud", Theme: "auto"}
	})
	_, key := h.newTenant("acme")

	// Bad settings are refused and change nothing.
	status, data := h.admin(http.MethodPatch, "/admin/v1/tenants/acme", map[string]any{"portal": map[string]any{"primary_color": "#12345", "theme": "dark"}})
	if e := wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed"); e.Field != "portal.primary_color" {
		t.Errorf("bad colour: field %q, want portal.primary_color", e.Field)
	}
	status, data = h.admin(http.MethodPatch, "/admin/v1/tenants/acme", map[string]any{"portal": map[string]any{"theme": "dark"}, "quotas": map[string]any{"endpoints": 0}})
	wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed")
	if status, data := h.admin(http.MethodGet, "/admin/v1/tenants/acme", nil); status != http.StatusOK || strings.Contains(string(data), `"portal"`) {
		t.Fatalf("tenant after refused PATCHes: %d %s, want no portal settings", status, data)
	}

	status, data = h.admin(http.MethodPatch, "/admin/v1/tenants/acme", map[string]any{"portal": map[string]any{
		"logo_url": "https://cdn.example.com/acme.svg", "primary_color": "#7c3aed", "theme": "dark",
		"frame_ancestors": []string{"https://dash.acme.example"},
	}})
	if status != http.StatusOK {
		t.Fatalf("PATCH portal settings: %d %s", status, data)
	}
	if got := decode[Tenant](t, data).Portal; got == nil || got.Theme != "dark" || got.ProductName != "" || len(got.FrameAncestors) != 1 {
		t.Errorf("tenant portal settings = %+v", got)
	}

	// A link's options are checked.
	status, data = h.api(key, http.MethodPost, "/webhook", map[string]any{"embed": true, "return_url": "javascript:alert(1)"})
	if e := wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed"); e.Field != "return_url" {
		t.Errorf("bad return_url: field %q", e.Field)
	}
	status, data = h.api(key, http.MethodPost, "/webhook", map[string]any{"embed": true, "return_url": "https://dash.acme.example/settings", "extra": 1})
	wantError(t, status, data, http.StatusBadRequest, "unknown_field")

	status, data = h.api(key, http.MethodPost, "/webhook", map[string]any{"embed": true, "return_url": "https://dash.acme.example/settings"})
	if status != http.StatusOK {
		t.Fatalf("POST /webhook with embed: %d %s", status, data)
	}
	u, err := url.Parse(decode[PortalLink](t, data).URL)
	if err != nil {
		t.Fatal(err)
	}
	status, _, hdr := h.request(http.MethodGet, u.RequestURI(), nil, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("login: %d", status)
	}
	c := sessionFrom(t, hdr)
	// The harness's public URL is http://127.0.0.1:…, where browsers take Secure cookies.
	if c.SameSite != http.SameSiteNoneMode || !c.Secure || !c.Partitioned || !c.HttpOnly {
		t.Errorf("embedded session cookie = %+v, want SameSite=None; Secure; Partitioned; HttpOnly", c)
	}
	status, data, hdr = h.request(http.MethodGet, "/portal/", nil, map[string]string{"Cookie": portal.SessionCookie + "=" + c.Value})
	if status != http.StatusOK {
		t.Fatalf("portal page: %d %s", status, data)
	}
	csp := hdr.Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors 'self' https://dash.acme.example;") || !strings.Contains(csp, "img-src 'self' data: https://cdn.example.com;") {
		t.Errorf("CSP = %q, want the tenant's frame ancestors and logo origin", csp)
	}
	if xfo := hdr.Get("X-Frame-Options"); xfo != "" {
		t.Errorf("X-Frame-Options = %q with frame ancestors set, want none", xfo)
	}
	page := string(data)
	for _, want := range []string{`data-theme="dark"`, `data-primary="#7c3aed"`, `<img class="logo" src="https://cdn.example.com/acme.svg"`,
		`<span class="product">Acme Cloud</span>`, `href="https://dash.acme.example/settings" target="_top"`, " · Acme Cloud</title>"} {
		if !strings.Contains(page, want) {
			t.Errorf("portal page lacks %s", want)
		}
	}
	status, data, _ = h.request(http.MethodGet, "/portal/api/session", nil, map[string]string{"Cookie": portal.SessionCookie + "=" + c.Value})
	if s := decode[portal.SessionView](t, data); status != http.StatusOK || !s.Embed || s.ReturnURL != "https://dash.acme.example/settings" ||
		s.ProductName != "Acme Cloud" || s.Theme != "dark" || s.PrimaryColor != "#7c3aed" {
		t.Errorf("session = %d %+v", status, s)
	}

	// Without a session the deployment's settings apply: framing refused.
	status, _, hdr = h.request(http.MethodGet, "/portal/", nil, nil)
	if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") || hdr.Get("X-Frame-Options") != "DENY" {
		t.Errorf("no session: %d, CSP %q, XFO %q; want 401, frame-ancestors 'none', DENY", status, hdr.Get("Content-Security-Policy"), hdr.Get("X-Frame-Options"))
	}

	// {} clears the tenant's settings.
	if status, data := h.admin(http.MethodPatch, "/admin/v1/tenants/acme", map[string]any{"portal": map[string]any{}}); status != http.StatusOK || strings.Contains(string(data), `"portal"`) {
		t.Errorf("clear portal settings: %d %s", status, data)
	}
}

// TestOpenAPIPortalLinkRequest holds the documented body of POST /webhook
// to the fields of LinkOptions (as TestOpenAPISchemasMatchViews does for
// the other schemas).
func TestOpenAPIPortalLinkRequest(t *testing.T) {
	var root struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &root); err != nil {
		t.Fatal(err)
	}
	s, ok := root.Components.Schemas["PortalLinkRequest"]
	if !ok {
		t.Fatal("schema PortalLinkRequest is not in openapi.json")
	}
	var got []string
	for p := range s.Properties {
		got = append(got, p)
	}
	slices.Sort(got)
	if want := jsonFields(reflect.TypeOf(LinkOptions{})); !slices.Equal(got, want) {
		t.Errorf("schema PortalLinkRequest has properties %v, want the fields of LinkOptions: %v", got, want)
	}
}
