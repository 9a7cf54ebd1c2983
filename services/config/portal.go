package config

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// webFS holds the portal's templates and stylesheet.
//
//go:embed web
var webFS embed.FS

// sessionCookie is the name of the portal session cookie.
const sessionCookie = "pulsehooks_session"

// portalCSP allows the portal's own scripts, styles and API and nothing else:
// no inline code, no framing, forms only to this origin.
const portalCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// parsePages parses the portal templates.
func parsePages() (*template.Template, error) {
	t, err := template.ParseFS(webFS, "web/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse portal templates: %w", err)
	}
	return t, nil
}

// portalPage is what the portal home page shows.
type portalPage struct {
	TenantID    string
	TenantName  string
	SessionEnds string
	Endpoints   []portalEndpoint
}

type portalEndpoint struct {
	ID             string
	URL            string
	Description    string
	Enabled        bool
	DisabledReason string
	EventTypes     []string
}

// messagePage is a page that explains one situation, such as a used link.
type messagePage struct {
	Title   string
	Message string
	Hint    string
}

// portalLogin redeems a single-use portal link and starts a session.
func (s *Service) portalLogin(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	if token == "" {
		s.renderMessage(w, r, http.StatusBadRequest, messagePage{
			Title:   "This link is incomplete",
			Message: "The portal link has no token in it.",
			Hint:    "Copy the whole link, or request a new link from your application.",
		})
		return
	}
	tenantID, err := s.store.redeemPortalToken(r.Context(), token)
	ttl := fmt.Sprintf("Portal links work once and expire %s after they are made. Request a new link from your application.", humanDuration(s.cfg.PortalLinkTTL))
	switch {
	case errors.Is(err, ErrLinkMalformed):
		s.renderMessage(w, r, http.StatusBadRequest, messagePage{Title: "This link is not valid", Message: "The portal link is damaged or incomplete.", Hint: ttl})
		return
	case errors.Is(err, ErrLinkUsed):
		s.renderMessage(w, r, http.StatusGone, messagePage{Title: "This link was already used or has expired", Message: "This portal link was already used, or it has expired.", Hint: ttl})
		return
	case errors.Is(err, ErrLinkExpired):
		s.renderMessage(w, r, http.StatusGone, messagePage{Title: "This link has expired", Message: "This portal link has expired.", Hint: ttl})
		return
	case err != nil:
		s.portalFailed(w, r, err)
		return
	}
	id, expires, err := s.store.createSession(r.Context(), tenantID)
	if err != nil {
		s.portalFailed(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    id,
		Path:     s.store.publicURL.Path + "/portal",
		Expires:  expires,
		MaxAge:   int(s.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   s.store.publicURL.Scheme == "https",
		SameSite: http.SameSiteLaxMode,
	})
	setPortalHeaders(w)
	w.Header().Set("Location", s.store.publicURL.Path+"/portal/")
	w.WriteHeader(http.StatusSeeOther)
}

// portalHome shows the tenant of the session its endpoints.
func (s *Service) portalHome(w http.ResponseWriter, r *http.Request) {
	noSession := messagePage{
		Title:   "Your portal session has ended",
		Message: "There is no portal session in this browser, or it has expired.",
		Hint:    "Open a fresh portal link: request a new one from your application.",
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		s.renderMessage(w, r, http.StatusUnauthorized, noSession)
		return
	}
	sess, err := s.store.session(r.Context(), c.Value)
	if errors.Is(err, ErrUnauthorized) {
		s.renderMessage(w, r, http.StatusUnauthorized, noSession)
		return
	}
	if err != nil {
		s.portalFailed(w, r, err)
		return
	}
	tenant, err := s.store.GetTenant(r.Context(), sess.TenantID)
	if err != nil {
		s.portalFailed(w, r, err)
		return
	}
	page := portalPage{TenantID: tenant.ID, TenantName: tenant.Name, SessionEnds: sess.ExpiresAt.UTC().Format("2 Jan 2006 15:04 UTC")}
	for _, ep := range s.state.allEndpoints(tenant.ID) {
		page.Endpoints = append(page.Endpoints, portalEndpoint{
			ID:             ep.GetId(),
			URL:            ep.GetUrl(),
			Description:    ep.GetDescription(),
			Enabled:        ep.GetEnabled(),
			DisabledReason: ep.GetDisabledReason(),
			EventTypes:     ep.GetEventTypes(),
		})
	}
	s.render(w, r, http.StatusOK, "portal", page)
}

// portalCSS serves the portal stylesheet.
func (s *Service) portalCSS(w http.ResponseWriter, r *http.Request) {
	css, err := webFS.ReadFile("web/portal.css")
	if err != nil {
		s.portalFailed(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(css)
}

func (s *Service) portalFailed(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "portal request failed", "path", r.URL.Path, "err", err)
	s.renderMessage(w, r, http.StatusInternalServerError, messagePage{
		Title:   "Something went wrong",
		Message: "The portal could not answer this request.",
		Hint:    "Try again in a moment; if it keeps failing, request a new link from your application.",
	})
}

func (s *Service) renderMessage(w http.ResponseWriter, r *http.Request, status int, m messagePage) {
	s.render(w, r, status, "message", m)
}

// render executes a template into a buffer first, so a failure is a clean
// 500 instead of half a page.
func (s *Service) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.ErrorContext(r.Context(), "render portal page", "template", name, "err", err)
		setPortalHeaders(w)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setPortalHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// setPortalHeaders sets the security headers of every portal page.
func setPortalHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", portalCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// humanDuration writes a duration as "15 minutes" or "2 hours".
func humanDuration(d time.Duration) string {
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
