package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
)

// HTTP server timeouts.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// publishBody is the JSON body of POST /v1/events.
type publishBody struct {
	TenantID       string          `json:"tenant_id"`
	EventType      string          `json:"event_type"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
	// Timestamp is RFC 3339; empty means now.
	Timestamp string `json:"timestamp"`
}

// publishReply is the JSON answer to an accepted POST /v1/events.
type publishReply struct {
	MessageID string `json:"message_id"`
	Duplicate bool   `json:"duplicate"`
}

// errorReply is the JSON answer to a failed request.
type errorReply struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the invalid input, such as data/status, when one is to blame.
	Field string `json:"field,omitempty"`
}

// jsonFallback answers requests no route matches with a JSON 404 or 405 in
// the errorReply shape instead of ServeMux's plain-text ones.
func jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &statusProbe{header: http.Header{}}
		h, _ := mux.Handler(r)
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			writeJSON(w, http.StatusMethodNotAllowed, errorReply{Error: errorBody{Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path}})
			return
		}
		writeJSON(w, http.StatusNotFound, errorReply{Error: errorBody{Code: "not_found", Message: "no route for " + r.Method + " " + r.URL.Path}})
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

// newHTTPServer routes POST /v1/events (traced, continuing the caller's W3C
// trace context), GET /healthz, GET /readyz and, if metrics is set, GET /metrics.
func (s *Service) newHTTPServer(tp trace.TracerProvider, metrics http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", otelhttp.NewHandler(http.HandlerFunc(s.handleHTTP), "POST /v1/events",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
	))
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return &http.Server{
		Handler:           jsonFallback(mux),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// handleHTTP serves POST /v1/events.
func (s *Service) handleHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	if err := s.authorize(r); err != nil {
		s.published(ctx, input{}, result{}, err)
		s.writeHTTPError(ctx, w, err)
		return
	}
	in, err := s.readBody(w, r)
	if err != nil {
		s.published(ctx, input{}, result{}, err)
		s.writeHTTPError(ctx, w, err)
		return
	}
	res, err := s.accept(ctx, in)
	if err != nil {
		s.writeHTTPError(ctx, w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, publishReply{MessageID: res.messageID, Duplicate: res.duplicate})
}

// authorize accepts the ingest token as a bearer token, compared in
// constant time. Tenant API keys are refused explicitly: job events come
// from Pulse's own systems.
func (s *Service) authorize(r *http.Request) error {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") && s.validToken(strings.TrimSpace(token)) {
		return nil
	}
	if r.Header.Get("X-Api-Key") != "" {
		return &problem{status: http.StatusForbidden, code: pulseclient.CodeForbidden,
			message: "tenant API keys cannot publish events: job events come from Pulse's own systems; use the ingest token (pho_…)"}
	}
	return &problem{status: http.StatusUnauthorized, code: pulseclient.CodeUnauthorized,
		message: "missing or invalid ingest token: send Authorization: Bearer <ingest token> (pho_…; the operator API token pha_… is for the operator API)"}
}

// validToken compares token to the ingest token in constant time; hashing
// both first hides the token's length too.
func (s *Service) validToken(token string) bool {
	got := sha256.Sum256([]byte(token))
	want := sha256.Sum256([]byte(s.cfg.OperatorToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// readBody checks the content type and decodes the body, at most
// maxBodyBytes of it, into an input.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request) (input, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return input{}, &problem{status: http.StatusUnsupportedMediaType, code: pulseclient.CodeUnsupportedMediaType,
			message: fmt.Sprintf("content type %q is not supported: send application/json", r.Header.Get("Content-Type"))}
	}
	limit := s.cfg.maxBodyBytes()
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	var body publishBody
	if err := dec.Decode(&body); err != nil {
		return input{}, decodeProblem(err, limit)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err == nil {
			return input{}, badRequest(pulseclient.CodeMalformedRequest, "body holds more than one JSON value")
		}
		return input{}, decodeProblem(err, limit)
	}
	in := input{
		tenantID:       body.TenantID,
		eventType:      body.EventType,
		data:           body.Data,
		idempotencyKey: body.IdempotencyKey,
	}
	if header := r.Header.Get("Idempotency-Key"); header != "" {
		if in.idempotencyKey != "" && in.idempotencyKey != header {
			return input{}, badRequest(pulseclient.CodeInvalidField, "the Idempotency-Key header and the idempotency_key field differ")
		}
		in.idempotencyKey = header
	}
	if body.Timestamp != "" {
		ts, err := time.Parse(time.RFC3339Nano, body.Timestamp)
		if err != nil {
			return input{}, badRequest(pulseclient.CodeInvalidTimestamp, "timestamp %q is not RFC 3339, such as 2026-01-02T15:04:05Z", body.Timestamp)
		}
		in.timestamp, in.hasTimestamp = ts, true
	}
	return in, nil
}

// decodeProblem explains a JSON decoding error.
func decodeProblem(err error, limit int64) *problem {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return tooLarge("body is over the limit of %d bytes", limit)
	}
	if errors.Is(err, io.EOF) {
		return badRequest(pulseclient.CodeMalformedRequest, "body is empty: send a JSON object")
	}
	return badRequest(pulseclient.CodeMalformedRequest, "body is not a valid event: %v", strings.TrimPrefix(err.Error(), "json: "))
}

// writeHTTPError logs err and writes it as {"error":{"code","message"}}.
func (s *Service) writeHTTPError(ctx context.Context, w http.ResponseWriter, err error) {
	p := s.logProblem(ctx, "http", err)
	if p.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pulsehooks-ingest"`)
	}
	if p.status == http.StatusServiceUnavailable || p.status == http.StatusGatewayTimeout {
		w.Header().Set("Retry-After", "1")
	}
	if p.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(p.retryAfter)))
	}
	writeJSON(w, p.status, errorReply{Error: errorBody{Code: p.code, Message: p.message, Field: p.field}})
}

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
