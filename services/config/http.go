package config

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

// Pagination of list endpoints.
const (
	defaultPageLimit = 50
	maxPageLimit     = 250
)

// routes returns the HTTP handler: operator API, tenant REST API, portal and
// health checks, traced with otelhttp.
func (s *Service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.live.Check(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stuck", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)

	admin := s.requireAdmin
	mux.Handle("POST /admin/v1/tenants", admin(s.createTenant))
	mux.Handle("GET /admin/v1/tenants", admin(s.listTenants))
	mux.Handle("GET /admin/v1/tenants/{id}", admin(s.getTenant))
	mux.Handle("PATCH /admin/v1/tenants/{id}", admin(s.patchTenant))
	mux.Handle("POST /admin/v1/tenants/{id}/api-keys", admin(s.createAPIKey))
	mux.Handle("GET /admin/v1/tenants/{id}/api-keys", admin(s.listAPIKeys))
	mux.Handle("DELETE /admin/v1/tenants/{id}/api-keys/{key_id}", admin(s.revokeAPIKey))
	mux.Handle("GET /admin/v1/event-types", admin(s.listEventTypes))
	mux.Handle("PUT /admin/v1/event-types/{name}", admin(s.putEventType))
	mux.Handle("DELETE /admin/v1/event-types/{name}", admin(s.deleteEventType))

	for _, rt := range s.apiRoutes() {
		mux.Handle(rt.method+" "+rt.pattern, rt.handler)
	}

	s.portal.Register(mux, jsonFallback(mux))
	s.registerRelay(mux)

	return otelhttp.NewHandler(jsonFallback(mux), "config",
		otelhttp.WithTracerProvider(s.tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
	)
}

// apiRoute is one route of the tenant REST API.
type apiRoute struct {
	method  string
	pattern string // a ServeMux path pattern, such as /v1/endpoints/{id}
	handler http.Handler
}

// apiRoutes is the tenant REST API: every /v1 route and POST /webhook, as
// routes registers them and as openapi.json documents them (a test holds
// the two together). All but the document itself need an API key.
func (s *Service) apiRoutes() []apiRoute {
	ts := &testSender{s: s}
	if s.nc != nil {
		if js, err := jetstream.New(s.nc); err == nil {
			ts.js = js
		}
	}
	tenant := s.requireAPIKey
	return []apiRoute{
		{"GET", "/v1/openapi.json", http.HandlerFunc(serveOpenAPI)},

		{"GET", "/v1/endpoints", tenant(s.listEndpoints)},
		{"POST", "/v1/endpoints", tenant(s.createEndpoint)},
		{"GET", "/v1/endpoints/{id}", tenant(s.getEndpoint)},
		{"PATCH", "/v1/endpoints/{id}", tenant(s.patchEndpoint)},
		{"DELETE", "/v1/endpoints/{id}", tenant(s.deleteEndpoint)},
		{"GET", "/v1/endpoints/{id}/secret", tenant(s.getSecret)},
		{"POST", "/v1/endpoints/{id}/secret/rotate", tenant(s.rotateSecret)},
		{"POST", "/v1/endpoints/{id}/test", tenant(ts.sendTest)},
		{"GET", "/v1/event-types", tenant(func(w http.ResponseWriter, r *http.Request, _ string) { s.listEventTypes(w, r) })},
		{"POST", "/webhook", tenant(s.createPortalLink)},

		{"GET", "/v1/messages", tenant(s.listMessages)},
		{"GET", "/v1/messages/{msg_id}", tenant(s.getMessage)},
		{"GET", "/v1/messages/{msg_id}/attempts", tenant(s.listMessageAttempts)},
		{"GET", "/v1/endpoints/{id}/attempts", tenant(s.listEndpointAttempts)},
		{"GET", "/v1/endpoints/{id}/messages", tenant(s.listEndpointMessages)},
		{"GET", "/v1/endpoints/{id}/deliveries", tenant(s.listEndpointDeliveries)},
		{"GET", "/v1/endpoints/{id}/message-log", tenant(s.endpointMessageLog)},
		{"GET", "/v1/endpoints/{id}/stats", tenant(s.endpointStats)},
		{"GET", "/v1/attempts/{attempt_id}", tenant(s.getAttempt)},
		{"POST", "/v1/endpoints/{id}/messages/{msg_id}/resend", tenant(s.resendMessage)},
		{"POST", "/v1/endpoints/{id}/recover", tenant(s.recoverEndpoint)},
		{"POST", "/v1/endpoints/{id}/retry-now", tenant(s.retryNowEndpoint)},
	}
}

// jsonFallback answers requests no route matches with a JSON 404 or 405
// instead of ServeMux's plain-text ones.
func jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "//") {
			// An empty path segment is an empty id (/v1/endpoints//secret
			// when $ID is unset), not a path for ServeMux to redirect.
			writeError(w, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path+": a path segment is empty; is an id missing?")
			return
		}
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		writeError(w, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
	})
}

// statusProbe records what ServeMux's fallback handler would answer.
type statusProbe struct {
	header http.Header
	status int
}

// Header returns the recorded header.
func (p *statusProbe) Header() http.Header { return p.header }

// Write discards the body.
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }

// WriteHeader records the status.
func (p *statusProbe) WriteHeader(status int) { p.status = status }

func (s *Service) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "config service is starting or shutting down")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// requireAdmin lets a request through when it carries the admin token.
func (s *Service) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !tokenEqual(got, s.cfg.AdminToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pulsehooks operator API"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "send the operator API token as \"Authorization: Bearer <token>\" (pha_…; the ingest token pho_… is for ingest)")
			return
		}
		h(w, r)
	})
}

// tenantHandler is a handler for a request authenticated as a tenant.
type tenantHandler func(w http.ResponseWriter, r *http.Request, tenantID string)

// requireAPIKey authenticates a request by its x-api-key header.
func (s *Service) requireAPIKey(h tenantHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tenantID, ok := portal.SessionTenant(r.Context()); ok { // a portal session (package portal)
			h(w, r, tenantID)
			return
		}
		key := r.Header.Get("X-Api-Key")
		if key == "" {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing x-api-key header")
			return
		}
		tenantID, err := s.store.Authenticate(r.Context(), key)
		if err != nil {
			writeErr(w, r, s.log, err)
			return
		}
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("pulsehooks.tenant_id", tenantID))
		h(w, r, tenantID)
	})
}

// listPage is the JSON envelope of paginated lists.
type listPage[T any] struct {
	Data     []T     `json:"data"`
	Iterator *string `json:"iterator"`
	Done     bool    `json:"done"`
}

// newListPage wraps one page; the iterator is the id of its last item.
func newListPage[T any](items []T, more bool, id func(T) string) listPage[T] {
	p := listPage[T]{Data: items, Done: !more}
	if p.Data == nil {
		p.Data = []T{}
	}
	if len(items) > 0 {
		last := id(items[len(items)-1])
		p.Iterator = &last
	}
	return p
}

// pageParams reads ?limit= (1–250, default 50) and ?iterator=.
func pageParams(r *http.Request) (after string, limit int, err error) {
	q := r.URL.Query()
	limit = defaultPageLimit
	if v := q.Get("limit"); v != "" {
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 1 || n > maxPageLimit {
			return "", 0, invalid("limit", "must be a whole number from 1 to %d, got %q", maxPageLimit, v)
		}
		limit = n
	}
	return q.Get("iterator"), limit, nil
}
