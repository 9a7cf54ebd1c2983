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
}

// newHTTPServer routes POST /v1/events (traced, continuing the caller's W3C
// trace context), GET /healthz and GET /readyz.
func (s *Service) newHTTPServer(tp trace.TracerProvider) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", otelhttp.NewHandler(http.HandlerFunc(s.handleHTTP), "POST /v1/events",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
	))
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	return &http.Server{
		Handler:           mux,
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
		s.writeHTTPError(ctx, w, err)
		return
	}
	in, err := s.readBody(w, r)
	if err != nil {
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

// authorize accepts the operator token as a bearer token, compared in
// constant time. Tenant API keys are refused explicitly: job events come
// from Pulse's own systems.
func (s *Service) authorize(r *http.Request) error {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") && s.validToken(strings.TrimSpace(token)) {
		return nil
	}
	if r.Header.Get("X-Api-Key") != "" {
		return &problem{status: http.StatusForbidden, code: pulseclient.CodeForbidden,
			message: "tenant API keys cannot publish events: job events come from Pulse's own systems; use the operator token"}
	}
	return &problem{status: http.StatusUnauthorized, code: pulseclient.CodeUnauthorized,
		message: "missing or invalid operator token: send Authorization: Bearer <operator token>"}
}

// validToken compares token to the operator token in constant time; hashing
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
	writeJSON(w, p.status, errorReply{Error: errorBody{Code: p.code, Message: p.message}})
}

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
