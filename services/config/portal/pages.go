package portal

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pulsehooks/pulsehooks/services/config/httpjson"
)

// webFS holds the portal's templates, stylesheet and scripts.
//
//go:embed web
var webFS embed.FS

// csp allows the portal's own scripts, styles and API and nothing else:
// no inline code, images from the portal and the brand's logo origin,
// framing only by the brand's frame ancestors (none by default), forms only
// to this origin.
func csp(b Branding) string {
	img := "img-src 'self' data:"
	if u, err := url.Parse(b.LogoURL); err == nil && b.LogoURL != "" && u.Host != "" {
		img += " " + u.Scheme + "://" + u.Host
	}
	frame := "frame-ancestors 'none'"
	if len(b.FrameAncestors) > 0 {
		frame = "frame-ancestors 'self' " + strings.Join(b.FrameAncestors, " ")
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; " + img + "; connect-src 'self'; object-src 'none'; " + frame + "; base-uri 'none'; form-action 'self'"
}

// brandView is what the templates show of the branding.
type brandView struct {
	Product      string
	LogoURL      string
	PrimaryColor string
	Theme        string
	ReturnURL    string
	Embedded     bool
}

func newBrandView(b Branding, sess Session) brandView {
	v := brandView{Product: b.ProductName, LogoURL: b.LogoURL, PrimaryColor: b.PrimaryColor, Theme: b.Theme, ReturnURL: sess.ReturnURL, Embedded: sess.Embed}
	if v.Product == "" {
		v.Product = "pulsehooks"
	}
	if v.Theme == "" {
		v.Theme = "light"
	}
	return v
}

// parsePages parses the portal templates; funcs are their functions
// (asset).
func parsePages(funcs template.FuncMap) (*template.Template, error) {
	t, err := template.New("portal").Funcs(funcs).ParseFS(webFS, "web/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse portal templates: %w", err)
	}
	return t, nil
}

// homePage is what the portal home page shows.
type homePage struct {
	Title       string
	Brand       brandView
	TenantID    string
	TenantName  string
	SessionEnds string
	// SessionEndsAt is SessionEnds in RFC 3339, which the app shows in the
	// viewer's zone.
	SessionEndsAt string
	Endpoints     []Endpoint
}

// messagePage is a page that explains one situation, such as a used link.
type messagePage struct {
	Title   string
	Message string
	Hint    string
	Brand   brandView
}

// login redeems a single-use portal link and starts a session.
func (p *Portal) login(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		p.renderMessage(w, r, http.StatusBadRequest, messagePage{
			Title:   "This link is incomplete",
			Message: "The portal link has no token in it.",
			Hint:    "Copy the whole link, or request a new link from your application.",
		})
		return
	}
	link, err := p.backend.RedeemLink(r.Context(), token)
	ttl := fmt.Sprintf("Portal links work once and expire %s after they are made. Request a new link from your application.", HumanDuration(p.cfg.LinkTTL))
	switch {
	case errors.Is(err, ErrLinkMalformed):
		p.renderMessage(w, r, http.StatusBadRequest, messagePage{Title: "This link is not valid", Message: "The portal link is damaged or incomplete.", Hint: ttl})
		return
	case errors.Is(err, ErrLinkUsed):
		p.renderMessage(w, r, http.StatusGone, messagePage{Title: "This link was already used or has expired", Message: "This portal link was already used, or it has expired.", Hint: ttl})
		return
	case errors.Is(err, ErrLinkExpired):
		p.renderMessage(w, r, http.StatusGone, messagePage{Title: "This link has expired", Message: "This portal link has expired.", Hint: ttl})
		return
	case err != nil:
		p.failed(w, r, err)
		return
	}
	id, expires, err := p.backend.CreateSession(r.Context(), link)
	if err != nil {
		p.failed(w, r, err)
		return
	}
	http.SetCookie(w, p.cookie(id, expires, int(p.cfg.SessionTTL.Seconds()), link.Embed))
	b := p.cfg.Branding
	if t, err := p.backend.Tenant(r.Context(), link.TenantID); err == nil {
		b = t.Branding
	}
	setHeaders(w, b)
	w.Header().Set("Location", p.cfg.PublicURL.Path+"/portal/")
	w.WriteHeader(http.StatusSeeOther)
}

// home shows the tenant of the session its endpoints.
func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	noSession := messagePage{
		Title:   "Your portal session has ended",
		Message: "There is no portal session in this browser, or it has expired.",
		Hint:    "Open a fresh portal link: request a new one from your application.",
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		p.renderMessage(w, r, http.StatusUnauthorized, noSession)
		return
	}
	sess, err := p.backend.Session(r.Context(), c.Value)
	if errors.Is(err, ErrNoSession) {
		p.renderMessage(w, r, http.StatusUnauthorized, noSession)
		return
	}
	if err != nil {
		p.failed(w, r, err)
		return
	}
	tenant, err := p.backend.Tenant(r.Context(), sess.TenantID)
	if err != nil {
		p.failed(w, r, err)
		return
	}
	page := homePage{Title: "Webhooks of " + tenant.Name, Brand: newBrandView(tenant.Branding, sess), TenantID: tenant.ID, TenantName: tenant.Name, SessionEnds: sess.ExpiresAt.UTC().Format("2 Jan 2006 15:04 UTC"),
		SessionEndsAt: sess.ExpiresAt.UTC().Format(time.RFC3339),
		Endpoints:     p.backend.Endpoints(tenant.ID)}
	p.render(w, r, http.StatusOK, "portal", page, tenant.Branding)
}

// css serves the portal stylesheet under its plain name.
func (p *Portal) css(w http.ResponseWriter, r *http.Request) {
	serveAsset(w, r, p.assets["portal.css"], false)
}

// asset serves one embedded file of the portal app, by its plain or its
// hashed name.
func (p *Portal) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a, ok := p.assets[name]
	if !ok {
		httpjson.Error(w, http.StatusNotFound, "not_found", "no portal asset "+name)
		return
	}
	setHeaders(w, p.cfg.Branding)
	serveAsset(w, r, a, name == a.hashed)
}

func (p *Portal) failed(w http.ResponseWriter, r *http.Request, err error) {
	p.cfg.Logger.ErrorContext(r.Context(), "portal request failed", "path", r.URL.Path, "err", err)
	p.renderMessage(w, r, http.StatusInternalServerError, messagePage{
		Title:   "Something went wrong",
		Message: "The portal could not answer this request.",
		Hint:    "Try again in a moment; if it keeps failing, request a new link from your application.",
	})
}

func (p *Portal) renderMessage(w http.ResponseWriter, r *http.Request, status int, m messagePage) {
	m.Brand = newBrandView(p.cfg.Branding, Session{})
	p.render(w, r, status, "message", m, p.cfg.Branding)
}

// render executes a template into a buffer first, so a failure is a clean
// 500 instead of half a page.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, data any, b Branding) {
	var buf bytes.Buffer
	if err := p.pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.cfg.Logger.ErrorContext(r.Context(), "render portal page", "template", name, "err", err)
		setHeaders(w, b)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setHeaders(w, b)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// setHeaders sets the security headers of every portal page; framing is
// refused unless the branding names frame ancestors.
func setHeaders(w http.ResponseWriter, b Branding) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp(b))
	h.Set("X-Content-Type-Options", "nosniff")
	if len(b.FrameAncestors) == 0 {
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// cookie is the session cookie: HttpOnly, SameSite=Lax, Secure over
// https; for an embedded session SameSite=None; Secure; Partitioned, so the
// browser sends it inside another site's iframe (over https, or on
// localhost, where browsers accept Secure cookies over http).
func (p *Portal) cookie(value string, expires time.Time, maxAge int, embed bool) *http.Cookie {
	https := p.cfg.PublicURL.Scheme == "https"
	c := &http.Cookie{
		Name:     SessionCookie,
		Value:    value,
		Path:     p.cfg.PublicURL.Path + "/portal",
		Expires:  expires,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   https,
		SameSite: http.SameSiteLaxMode,
	}
	if embed && (https || isLocalhost(p.cfg.PublicURL.Hostname())) {
		c.Secure, c.SameSite, c.Partitioned = true, http.SameSiteNoneMode, true
	}
	return c
}

// isLocalhost reports whether host is localhost or a loopback address.
func isLocalhost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HumanDuration writes a duration as "15 minutes", "2 hours" or "30 days".
func HumanDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return plural(int(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	}
	return plural(int(d.Round(time.Second)/time.Second), "second")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
