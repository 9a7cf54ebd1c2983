package config

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// The portal's browser app talks JSON to /portal/api/…, which runs the same
// handlers as the tenant REST API under /v1: /portal/api/endpoints is
// /v1/endpoints with the tenant taken from the session cookie instead of
// x-api-key. Every request that is not GET or HEAD must carry the session's
// CSRF token in X-CSRF-Token, and is refused when Origin or Sec-Fetch-Site
// say it comes from another site.

// csrfHeader is the header that carries the session's CSRF token.
const csrfHeader = "X-CSRF-Token"

// portalTenantKey is the context key of the tenant of a portal session.
type portalTenantKey struct{}

// portalTenant returns the tenant of the portal session that authenticated
// the request, if any; requireAPIKey accepts it in place of x-api-key.
func portalTenant(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(portalTenantKey{}).(string)
	return id, ok && id != ""
}

// portalAssets are the static files of the portal app, with their types.
var portalAssets = map[string]string{
	"portal.css": "text/css; charset=utf-8",
	"app.js":     "text/javascript; charset=utf-8",
}

// registerPortal adds the portal app and its session API to mux. api is the handler /portal/api/… requests are passed to
// after their path is rewritten to /v1/….
func (s *Service) registerPortal(mux *http.ServeMux, api http.Handler) {
	for _, rt := range s.portalRoutes() {
		mux.Handle(rt.method+" "+rt.pattern, rt.handler)
	}
	mux.Handle(portalAPIPattern, s.portalAPI(api))
}

// portalAPIPattern is the portal API's mirror of the tenant API: every
// apiRoutes route /v1/X is also /portal/api/X.
const portalAPIPattern = "/portal/api/{path...}"

// portalRoutes are the portal's own routes besides that mirror. The tenant
// isolation test walks them with apiRoutes: a route added here with a path
// parameter must be covered there.
func (s *Service) portalRoutes() []apiRoute {
	return []apiRoute{
		{"GET", "/portal/static/{name}", http.HandlerFunc(s.portalAsset)},
		{"GET", "/portal/api/session", http.HandlerFunc(s.portalSession)},
		{"POST", "/portal/api/logout", http.HandlerFunc(s.portalLogout)},
	}
}

// portalAsset serves one embedded file of the portal app.
func (s *Service) portalAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ct, ok := portalAssets[name]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no portal asset "+name)
		return
	}
	data, err := webFS.ReadFile(path.Join("web", name))
	if err != nil {
		s.portalFailed(w, r, err)
		return
	}
	setPortalHeaders(w)
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
}

// sessionView is what GET /portal/api/session answers.
type sessionView struct {
	TenantID   string    `json:"tenant_id"`
	TenantName string    `json:"tenant_name"`
	ExpiresAt  time.Time `json:"expires_at"`
	CSRFToken  string    `json:"csrf_token"`
	PublicURL  string    `json:"public_url"`
}

func (s *Service) portalSession(w http.ResponseWriter, r *http.Request) {
	sess, id, err := s.sessionOf(r)
	if err != nil {
		s.portalAPIError(w, r, err)
		return
	}
	tenant, err := s.store.GetTenant(r.Context(), sess.TenantID)
	if err != nil {
		s.portalAPIError(w, r, err)
		return
	}
	setPortalHeaders(w)
	writeJSON(w, http.StatusOK, sessionView{
		TenantID:   tenant.ID,
		TenantName: tenant.Name,
		ExpiresAt:  sess.ExpiresAt,
		CSRFToken:  s.csrfToken(id),
		PublicURL:  s.store.publicURL.String(),
	})
}

// portalLogout ends the request's session: deleted from the store, so no
// replica accepts its cookie again, and the cookie cleared. Like every
// portal API write it needs the CSRF token.
func (s *Service) portalLogout(w http.ResponseWriter, r *http.Request) {
	setPortalHeaders(w)
	_, id, err := s.sessionOf(r)
	if err != nil {
		s.portalAPIError(w, r, err)
		return
	}
	if msg := s.csrfProblem(r, id); msg != "" {
		writeError(w, http.StatusForbidden, "csrf_failed", msg)
		return
	}
	if err := s.store.endSession(r.Context(), id); err != nil {
		s.portalAPIError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    "",
		Path:     s.store.publicURL.Path + "/portal",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   s.store.publicURL.Scheme == "https",
		SameSite: http.SameSiteLaxMode,
	})
	w.WriteHeader(http.StatusNoContent)
}

// portalAPI authenticates a portal API request by its session cookie,
// checks CSRF on writes, and passes it to api as the /v1 request it mirrors.
func (s *Service) portalAPI(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPortalHeaders(w)
		sess, id, err := s.sessionOf(r)
		if err != nil {
			s.portalAPIError(w, r, err)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if msg := s.csrfProblem(r, id); msg != "" {
				writeError(w, http.StatusForbidden, "csrf_failed", msg)
				return
			}
		}
		rest := r.PathValue("path")
		if rest == "" || rest == "session" || rest == "logout" {
			writeError(w, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
			return
		}
		r2 := r.Clone(context.WithValue(r.Context(), portalTenantKey{}, sess.TenantID))
		r2.URL.Path = "/v1/" + rest
		r2.URL.RawPath = ""
		r2.RequestURI = r2.URL.RequestURI()
		api.ServeHTTP(w, r2)
	})
}

// sessionOf returns the live session of the request's cookie and its id.
func (s *Service) sessionOf(r *http.Request) (sessionRecord, string, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return sessionRecord{}, "", ErrUnauthorized
	}
	sess, err := s.store.session(r.Context(), c.Value)
	if err != nil {
		return sessionRecord{}, "", err
	}
	return sess, c.Value, nil
}

func (s *Service) portalAPIError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrUnauthorized) {
		writeError(w, http.StatusUnauthorized, "unauthorized", "your portal session has ended; open a new portal link")
		return
	}
	writeErr(w, r, s.log, err)
}

// csrfToken derives the CSRF token of a session: an HMAC of its id under a
// key derived from the master key, so every replica computes the same token
// and nothing more is stored.
func (s *Service) csrfToken(sessionID string) string {
	key := sha256.Sum256(append([]byte("pulsehooks portal csrf v1\x00"), s.cfg.MasterKey...))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfProblem says why a write is refused, or "" when it passes: the token
// must match the session's, Sec-Fetch-Site (when sent) must be same-origin,
// and Origin (when sent) must be this service's.
func (s *Service) csrfProblem(r *http.Request, sessionID string) string {
	got := r.Header.Get(csrfHeader)
	if got == "" || !hmac.Equal([]byte(got), []byte(s.csrfToken(sessionID))) {
		return "missing or wrong " + csrfHeader + " header; reload the page"
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return "cross-site request refused"
	}
	if origin := r.Header.Get("Origin"); origin != "" && !s.sameOrigin(r, origin) {
		return "request from another origin refused"
	}
	return ""
}

// sameOrigin reports whether origin is the public URL's origin or the origin
// the request was sent to.
func (s *Service) sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	pub := s.store.publicURL
	if strings.EqualFold(u.Scheme, pub.Scheme) && strings.EqualFold(u.Host, pub.Host) {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, r.Host)
}
