package portal

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"path"
	"time"

	"github.com/pulsehooks/pulsehooks/services/config/httpjson"
)

// webFS holds the portal's templates, stylesheet and scripts.
//
//go:embed web
var webFS embed.FS

// csp allows the portal's own scripts, styles and API and nothing else:
// no inline code, no framing, forms only to this origin.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// assets are the static files of the portal app, with their types.
var assets = map[string]string{
	"portal.css": "text/css; charset=utf-8",
	"app.js":     "text/javascript; charset=utf-8",
	"logs.js":    "text/javascript; charset=utf-8",
}

// parsePages parses the portal templates.
func parsePages() (*template.Template, error) {
	t, err := template.ParseFS(webFS, "web/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse portal templates: %w", err)
	}
	return t, nil
}

// homePage is what the portal home page shows.
type homePage struct {
	TenantID    string
	TenantName  string
	SessionEnds string
	Endpoints   []Endpoint
}

// messagePage is a page that explains one situation, such as a used link.
type messagePage struct {
	Title   string
	Message string
	Hint    string
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
	tenantID, err := p.backend.RedeemLink(r.Context(), token)
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
	id, expires, err := p.backend.CreateSession(r.Context(), tenantID)
	if err != nil {
		p.failed(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    id,
		Path:     p.cfg.PublicURL.Path + "/portal",
		Expires:  expires,
		MaxAge:   int(p.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   p.cfg.PublicURL.Scheme == "https",
		SameSite: http.SameSiteLaxMode,
	})
	setHeaders(w)
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
	page := homePage{TenantID: tenant.ID, TenantName: tenant.Name, SessionEnds: sess.ExpiresAt.UTC().Format("2 Jan 2006 15:04 UTC"),
		Endpoints: p.backend.Endpoints(tenant.ID)}
	p.render(w, r, http.StatusOK, "portal", page)
}

// css serves the portal stylesheet.
func (p *Portal) css(w http.ResponseWriter, r *http.Request) {
	css, err := webFS.ReadFile("web/portal.css")
	if err != nil {
		p.failed(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(css)
}

// asset serves one embedded file of the portal app.
func (p *Portal) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ct, ok := assets[name]
	if !ok {
		httpjson.Error(w, http.StatusNotFound, "not_found", "no portal asset "+name)
		return
	}
	data, err := webFS.ReadFile(path.Join("web", name))
	if err != nil {
		p.failed(w, r, err)
		return
	}
	setHeaders(w)
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
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
	p.render(w, r, status, "message", m)
}

// render executes a template into a buffer first, so a failure is a clean
// 500 instead of half a page.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := p.pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.cfg.Logger.ErrorContext(r.Context(), "render portal page", "template", name, "err", err)
		setHeaders(w)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// setHeaders sets the security headers of every portal page.
func setHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// HumanDuration writes a duration as "15 minutes" or "2 hours".
func HumanDuration(d time.Duration) string {
	switch {
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
