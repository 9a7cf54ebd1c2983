package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pulsehooks/pulsehooks/services/config/httpjson"
)

// The portal's browser app talks JSON to /portal/api/…, which runs the same
// handlers as the tenant REST API under /v1: /portal/api/endpoints is
// /v1/endpoints with the tenant taken from the session cookie instead of
// x-api-key. Every request that is not GET or HEAD must carry the session's
// CSRF token in X-CSRF-Token, and is refused when Origin or Sec-Fetch-Site
// say it comes from another site.

// SessionView is what GET /portal/api/session answers.
type SessionView struct {
	TenantID   string    `json:"tenant_id"`
	TenantName string    `json:"tenant_name"`
	ExpiresAt  time.Time `json:"expires_at"`
	CSRFToken  string    `json:"csrf_token"`
	PublicURL  string    `json:"public_url"`
}

func (p *Portal) session(w http.ResponseWriter, r *http.Request) {
	sess, id, err := p.sessionOf(r)
	if err != nil {
		p.apiError(w, r, err)
		return
	}
	tenant, err := p.backend.Tenant(r.Context(), sess.TenantID)
	if err != nil {
		p.apiError(w, r, err)
		return
	}
	setHeaders(w)
	httpjson.Write(w, http.StatusOK, SessionView{
		TenantID:   tenant.ID,
		TenantName: tenant.Name,
		ExpiresAt:  sess.ExpiresAt,
		CSRFToken:  p.csrfToken(id),
		PublicURL:  p.cfg.PublicURL.String(),
	})
}

// logout ends the request's session: deleted from the store, so no replica
// accepts its cookie again, and the cookie cleared. Like every portal API
// write it needs the CSRF token.
func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	setHeaders(w)
	_, id, err := p.sessionOf(r)
	if err != nil {
		p.apiError(w, r, err)
		return
	}
	if msg := p.csrfProblem(r, id); msg != "" {
		httpjson.Error(w, http.StatusForbidden, "csrf_failed", msg)
		return
	}
	if err := p.backend.EndSession(r.Context(), id); err != nil {
		p.apiError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    "",
		Path:     p.cfg.PublicURL.Path + "/portal",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   p.cfg.PublicURL.Scheme == "https",
		SameSite: http.SameSiteLaxMode,
	})
	w.WriteHeader(http.StatusNoContent)
}

// api authenticates a portal API request by its session cookie, checks
// CSRF on writes, and passes it to next as the /v1 request it mirrors.
func (p *Portal) api(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeaders(w)
		sess, id, err := p.sessionOf(r)
		if err != nil {
			p.apiError(w, r, err)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if msg := p.csrfProblem(r, id); msg != "" {
				httpjson.Error(w, http.StatusForbidden, "csrf_failed", msg)
				return
			}
		}
		rest := r.PathValue("path")
		if rest == "" || rest == "session" || rest == "logout" {
			httpjson.Error(w, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
			return
		}
		r2 := r.Clone(context.WithValue(r.Context(), tenantKey{}, sess.TenantID))
		r2.URL.Path = "/v1/" + rest
		r2.URL.RawPath = ""
		r2.RequestURI = r2.URL.RequestURI()
		next.ServeHTTP(w, r2)
	})
}

// sessionOf returns the live session of the request's cookie and its id.
func (p *Portal) sessionOf(r *http.Request) (Session, string, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return Session{}, "", ErrNoSession
	}
	sess, err := p.backend.Session(r.Context(), c.Value)
	if err != nil {
		return Session{}, "", err
	}
	return sess, c.Value, nil
}

func (p *Portal) apiError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrNoSession) {
		httpjson.Error(w, http.StatusUnauthorized, "unauthorized", "your portal session has ended; open a new portal link")
		return
	}
	p.cfg.APIError(w, r, err)
}

// csrfToken derives the CSRF token of a session: an HMAC of its id under a
// key derived from the master key, so every replica computes the same token
// and nothing more is stored.
func (p *Portal) csrfToken(sessionID string) string {
	key := sha256.Sum256(append([]byte("pulsehooks portal csrf v1\x00"), p.cfg.MasterKey...))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfProblem says why a write is refused, or "" when it passes: the token
// must match the session's, Sec-Fetch-Site (when sent) must be same-origin,
// and Origin (when sent) must be this service's.
func (p *Portal) csrfProblem(r *http.Request, sessionID string) string {
	got := r.Header.Get(CSRFHeader)
	if got == "" || !hmac.Equal([]byte(got), []byte(p.csrfToken(sessionID))) {
		return "missing or wrong " + CSRFHeader + " header; reload the page"
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return "cross-site request refused"
	}
	if origin := r.Header.Get("Origin"); origin != "" && !p.sameOrigin(r, origin) {
		return "request from another origin refused"
	}
	return ""
}

// sameOrigin reports whether origin is the public URL's origin or the origin
// the request was sent to.
func (p *Portal) sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	pub := p.cfg.PublicURL
	if strings.EqualFold(u.Scheme, pub.Scheme) && strings.EqualFold(u.Host, pub.Host) {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, r.Host)
}
