package config

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

// portalLink asks for a portal link and returns its path and query.
func (h *harness) portalLink(key string) string {
	h.t.Helper()
	status, data := h.api(key, http.MethodPost, "/webhook", nil)
	if status != http.StatusOK {
		h.t.Fatalf("POST /webhook: status %d: %s", status, data)
	}
	link := decode[PortalLink](h.t, data)
	u, err := url.Parse(link.URL)
	if err != nil {
		h.t.Fatalf("portal link %q: %v", link.URL, err)
	}
	if u.Scheme+"://"+u.Host != h.svc.PublicURL().String() || u.Path != "/portal/login" || len(u.Query().Get("token")) != portalTokenLen {
		h.t.Fatalf("portal link %q: want %s/portal/login?token=<43 chars>", link.URL, h.svc.PublicURL())
	}
	return u.RequestURI()
}

func sessionFrom(t *testing.T, hdr http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: hdr}).Cookies() {
		if c.Name == portal.SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", portal.SessionCookie, hdr.Values("Set-Cookie"))
	return nil
}

func TestPortalLoginAndPage(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	h.newEndpoint(key, map[string]any{
		"url":         "https://example.com/hook?a=1&b=2",
		"description": `<script>alert("pwned")</script>`,
		"event_types": []string{"job.completed"},
	})
	h.newEndpoint(key, map[string]any{"url": "https://example.com/all", "enabled": false})

	status, data, hdr := h.request(http.MethodGet, h.portalLink(key), nil, nil)
	if status != http.StatusSeeOther || hdr.Get("Location") != "/portal/" {
		t.Fatalf("login: status %d, Location %q (%s); want 303 to /portal/", status, hdr.Get("Location"), data)
	}
	c := sessionFrom(t, hdr)
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/portal" || c.Secure || c.MaxAge != int(DefaultSessionTTL.Seconds()) {
		t.Errorf("cookie = %+v, want HttpOnly, SameSite=Lax, Path=/portal, not Secure over http, 24h", c)
	}

	status, data, hdr = h.request(http.MethodGet, "/portal/", nil, map[string]string{"Cookie": portal.SessionCookie + "=" + c.Value})
	if status != http.StatusOK {
		t.Fatalf("portal page: status %d: %s", status, data)
	}
	page := string(data)
	for _, want := range []string{
		"Tenant acme",
		"https://example.com/hook?a=1&amp;b=2",
		"&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;",
		"<code>job.completed</code>",
		"All event types",
		"Disabled",
		"Endpoints (2)",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("portal page does not contain %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Errorf("portal page contains an unescaped <script> tag")
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'self' and only the portal's own scripts", csp)
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("X-Frame-Options") != "DENY" {
		t.Errorf("portal headers = %v, want no-store and DENY framing", hdr)
	}

	status, _, hdr = h.request(http.MethodGet, "/portal/static/portal.css", nil, nil)
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: status %d, type %q", status, hdr.Get("Content-Type"))
	}
}

func TestPortalRefusals(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")

	link := h.portalLink(key)
	if status, _, _ := h.request(http.MethodGet, link, nil, nil); status != http.StatusSeeOther {
		t.Fatalf("first use of link: status %d, want 303", status)
	}
	tests := []struct {
		name     string
		path     string
		cookie   string
		status   int
		wantText string
	}{
		{"reused link", link, "", http.StatusGone, "already used"},
		{"unknown token", "/portal/login?token=" + strings.Repeat("A", portalTokenLen), "", http.StatusGone, "Request a new link"},
		{"malformed token", "/portal/login?token=abc", "", http.StatusBadRequest, "not valid"},
		{"no token", "/portal/login", "", http.StatusBadRequest, "incomplete"},
		{"page without session", "/portal/", "", http.StatusUnauthorized, "Open a fresh portal link"},
		{"page with unknown session", "/portal/", strings.Repeat("B", portalTokenLen), http.StatusUnauthorized, "Open a fresh portal link"},
		{"page with malformed session", "/portal/", "x", http.StatusUnauthorized, "Open a fresh portal link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr map[string]string
			if tt.cookie != "" {
				hdr = map[string]string{"Cookie": portal.SessionCookie + "=" + tt.cookie}
			}
			status, data, respHdr := h.request(http.MethodGet, tt.path, nil, hdr)
			if status != tt.status {
				t.Fatalf("status = %d, want %d: %s", status, tt.status, data)
			}
			if !strings.Contains(string(data), tt.wantText) {
				t.Errorf("page does not say %q:\n%s", tt.wantText, data)
			}
			if respHdr.Get("Set-Cookie") != "" {
				t.Errorf("refused request set a cookie: %q", respHdr.Get("Set-Cookie"))
			}
			if !strings.HasPrefix(respHdr.Get("Content-Type"), "text/html") || respHdr.Get("Content-Security-Policy") == "" {
				t.Errorf("refusal page headers = %v, want HTML with a CSP", respHdr)
			}
		})
	}
	status, data := h.api("phk_"+strings.Repeat("Z", 43), http.MethodPost, "/webhook", nil)
	wantError(t, status, data, http.StatusUnauthorized, "unauthorized")
}

func TestPortalConcurrentRedeemOneWins(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	for round := range 5 {
		link := h.portalLink(key)
		const n = 8
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				statuses[i], _, _ = h.request(http.MethodGet, link, nil, nil)
			})
		}
		wg.Wait()
		wins := 0
		for _, s := range statuses {
			switch s {
			case http.StatusSeeOther:
				wins++
			case http.StatusGone:
			default:
				t.Errorf("round %d: concurrent redeem answered %d, want 303 or 410", round, s)
			}
		}
		if wins != 1 {
			t.Errorf("round %d: %d of %d concurrent redeems won (statuses %v), want exactly 1", round, wins, n, statuses)
		}
	}
}

func TestPortalExpiry(t *testing.T) {
	h := newHarness(t)
	clock := &testClock{now: time.Now()}
	h.clock = clock
	h.start()
	_, key := h.newTenant("acme")

	link := h.portalLink(key)
	clock.Advance(DefaultPortalLinkTTL + time.Second)
	status, data, hdr := h.request(http.MethodGet, link, nil, nil)
	if status != http.StatusGone || !strings.Contains(string(data), "expired") || hdr.Get("Set-Cookie") != "" {
		t.Fatalf("expired link: status %d, cookie %q: %s; want 410 saying it expired", status, hdr.Get("Set-Cookie"), data)
	}

	status, _, hdr = h.request(http.MethodGet, h.portalLink(key), nil, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("fresh link: status %d, want 303", status)
	}
	cookie := map[string]string{"Cookie": portal.SessionCookie + "=" + sessionFrom(t, hdr).Value}
	if status, _, _ := h.request(http.MethodGet, "/portal/", nil, cookie); status != http.StatusOK {
		t.Fatalf("page in a fresh session: status %d, want 200", status)
	}
	clock.Advance(DefaultSessionTTL + time.Second)
	status, data, _ = h.request(http.MethodGet, "/portal/", nil, cookie)
	if status != http.StatusUnauthorized || !strings.Contains(string(data), "fresh portal link") {
		t.Errorf("page in an expired session: status %d: %s; want 401 asking for a fresh link", status, data)
	}
}

func TestPortalSecureCookieOverHTTPS(t *testing.T) {
	h := startService(t, func(c *Config) { c.PublicURL = "https://hooks.example.com/base/" })
	_, key := h.newTenant("acme")
	status, data := h.api(key, http.MethodPost, "/webhook", nil)
	if status != http.StatusOK {
		t.Fatalf("POST /webhook: status %d: %s", status, data)
	}
	link := decode[PortalLink](t, data)
	if !strings.HasPrefix(link.URL, "https://hooks.example.com/base/portal/login?token=") {
		t.Fatalf("link = %q, want it under the public URL", link.URL)
	}
	u, _ := url.Parse(link.URL)
	status, _, hdr := h.request(http.MethodGet, "/portal/login?"+u.RawQuery, nil, nil)
	if status != http.StatusSeeOther || hdr.Get("Location") != "/base/portal/" {
		t.Fatalf("login: status %d, Location %q; want 303 to /base/portal/", status, hdr.Get("Location"))
	}
	if c := sessionFrom(t, hdr); !c.Secure || c.Path != "/base/portal" {
		t.Errorf("cookie = %+v, want Secure with Path /base/portal", c)
	}
}
