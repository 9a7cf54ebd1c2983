// Package portal is the tenant's web portal: the single-use login link, the
// session cookie, the server-rendered pages and the browser app in web/, and
// /portal/api/…, the tenant REST API mirrored under the session's
// credentials with CSRF checks. Every page's data comes from that API (the
// app's JavaScript calls it) or, for the first paint of the home page, from
// Backend.Endpoints.
package portal

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// SessionCookie is the name of the portal session cookie.
const SessionCookie = "pulsehooks_session"

// CSRFHeader is the header that carries the session's CSRF token.
const CSRFHeader = "X-CSRF-Token"

// Errors a Backend wraps.
var (
	// ErrLinkUsed is wrapped when a portal link is unknown: it was already
	// used, or expired and was removed.
	ErrLinkUsed = errors.New("portal link was already used or has expired")
	// ErrLinkExpired is wrapped when a portal link is past its expiry.
	ErrLinkExpired = errors.New("portal link has expired")
	// ErrLinkMalformed is wrapped when a portal link's token is not one the
	// service could have made.
	ErrLinkMalformed = errors.New("portal link is malformed")
	// ErrNoSession is wrapped when a session id is unknown, malformed or
	// expired.
	ErrNoSession = errors.New("no portal session")
)

// Backend is what the portal needs from the config service's store.
type Backend interface {
	// RedeemLink consumes a single-use link token and returns its tenant;
	// errors wrap ErrLinkMalformed, ErrLinkUsed or ErrLinkExpired.
	RedeemLink(ctx context.Context, token string) (tenantID string, err error)
	// CreateSession starts a session for a tenant and returns its id.
	CreateSession(ctx context.Context, tenantID string) (id string, expires time.Time, err error)
	// Session returns a live session; errors wrap ErrNoSession when there is none.
	Session(ctx context.Context, id string) (Session, error)
	// EndSession deletes a session, so its id is no longer accepted.
	EndSession(ctx context.Context, id string) error
	// Tenant returns a tenant's id and name.
	Tenant(ctx context.Context, id string) (Tenant, error)
	// Endpoints lists a tenant's endpoints for the home page's first paint.
	Endpoints(tenantID string) []Endpoint
}

// Session is a live portal session.
type Session struct {
	TenantID  string
	ExpiresAt time.Time
}

// Tenant is the tenant a session belongs to.
type Tenant struct {
	ID   string
	Name string
}

// Endpoint is an endpoint as the home page lists it.
type Endpoint struct {
	ID             string
	URL            string
	Description    string
	Enabled        bool
	DisabledReason string
	EventTypes     []string
}

// Config is the portal's configuration.
type Config struct {
	// PublicURL is the base of portal links; its path prefixes the portal's
	// paths and cookie, and an https scheme makes the cookie Secure.
	PublicURL *url.URL
	// MasterKey derives the CSRF key.
	MasterKey []byte
	// LinkTTL and SessionTTL are how long links and sessions last.
	LinkTTL, SessionTTL time.Duration
	// Logger logs failed requests.
	Logger *slog.Logger
	// APIError writes an error of the backend as the tenant API's JSON error.
	APIError func(w http.ResponseWriter, r *http.Request, err error)
}

// Portal serves the portal's pages, assets and API.
type Portal struct {
	cfg     Config
	backend Backend
	pages   *template.Template
}

// New parses the page templates and returns the portal.
func New(cfg Config, backend Backend) (*Portal, error) {
	if cfg.PublicURL == nil || cfg.Logger == nil || cfg.APIError == nil || backend == nil {
		return nil, errors.New("portal: PublicURL, Logger, APIError and a backend are required")
	}
	pages, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	return &Portal{cfg: cfg, backend: backend, pages: pages}, nil
}

// Route is one route of the portal.
type Route struct {
	Method  string
	Pattern string // a ServeMux path pattern
	Handler http.Handler
}

// Register adds the portal's pages, assets and API to mux. api is the
// handler /portal/api/… requests are passed to after their path is
// rewritten to /v1/…, with the session's tenant in the context (SessionTenant).
func (p *Portal) Register(mux *http.ServeMux, api http.Handler) {
	mux.HandleFunc("GET /portal/login", p.login)
	mux.HandleFunc("GET /portal/{$}", p.home)
	mux.HandleFunc("GET /portal/static/portal.css", p.css)
	for _, rt := range p.Routes() {
		mux.Handle(rt.Method+" "+rt.Pattern, rt.Handler)
	}
	mux.Handle(apiPattern, p.api(api))
}

// apiPattern is the portal API's mirror of the tenant API: every route
// /v1/X is also /portal/api/X.
const apiPattern = "/portal/api/{path...}"

// Routes are the portal's routes with path parameters besides the API
// mirror. The config service's tenant isolation test walks them: a route
// added here with a path parameter must be covered there.
func (p *Portal) Routes() []Route {
	return []Route{
		{"GET", "/portal/static/{name}", http.HandlerFunc(p.asset)},
		{"GET", "/portal/api/session", http.HandlerFunc(p.session)},
		{"POST", "/portal/api/logout", http.HandlerFunc(p.logout)},
	}
}

// tenantKey is the context key of the tenant of a portal session.
type tenantKey struct{}

// SessionTenant returns the tenant of the portal session that authenticated
// the request, if any; the tenant API accepts it in place of an API key.
func SessionTenant(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(tenantKey{}).(string)
	return id, ok && id != ""
}
