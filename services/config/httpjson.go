package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/services/config/httpjson"
)

// httpError is an error with the HTTP status and code to answer it with.
type httpError struct {
	status  int
	code    string
	message string
}

// Error returns the message sent to the client.
func (e *httpError) Error() string { return e.message }

// paramError is a malformed query parameter: answered 400 with the
// parameter named in the message and in field.
type paramError struct {
	param   string
	message string
}

// Error returns the message, which names the parameter.
func (e *paramError) Error() string { return e.message }

// badParam returns a *paramError whose message starts with the parameter's
// name, such as "since must be an RFC 3339 time …".
func badParam(param, format string, args ...any) error {
	return &paramError{param: param, message: param + " " + fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) error {
	return &httpError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON of every error response.
type errorBody = httpjson.ErrorBody

type errorDetail = httpjson.ErrorDetail

// writeJSON writes v as the JSON response body.
func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

func writeError(w http.ResponseWriter, status int, code, message string) {
	httpjson.Error(w, status, code, message)
}

// writeErr answers with the status an error calls for; unexpected errors are
// logged and answered with a generic 500.
func writeErr(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var he *httpError
	var ve *ValidationError
	var pe *paramError
	switch {
	case errors.As(err, &he):
		writeError(w, he.status, he.code, he.message)
	case errors.As(err, &pe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorDetail{Code: "invalid_parameter", Message: pe.message, Field: pe.param}})
	case errors.As(err, &ve):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: errorDetail{Code: "validation_failed", Message: ve.Error(), Field: ve.Field}})
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, ErrUnauthorized):
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
	case r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, "unavailable", "request cancelled before it completed")
	case storeUnavailable(err):
		log.WarnContext(r.Context(), "store unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the configuration store is unavailable; try again shortly")
	default:
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal_error", "internal error; try again, and contact the operator if it persists")
	}
}

// decodeJSON reads a JSON object body of at most limit bytes into dst,
// refusing unknown fields and trailing data. An empty body is accepted when
// allowEmpty is true and leaves dst unchanged.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any, allowEmpty bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &httpError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: fmt.Sprintf("Content-Type must be application/json, not %q", ct)}
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &httpError{status: http.StatusRequestEntityTooLarge, code: "body_too_large", message: fmt.Sprintf("request body is larger than the %d-byte limit", limit)}
	}
	if err != nil {
		return badRequest("invalid_json", "cannot read request body: %v", err)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		if allowEmpty {
			return nil
		}
		return badRequest("invalid_json", "request body is empty; send a JSON object")
	}
	if data[0] != '{' {
		return badRequest("invalid_json", "request body must be a JSON object")
	}
	return unmarshalStrict(data, dst)
}

// unmarshalStrict decodes one JSON value into dst, refusing unknown fields,
// trailing data and bytes that are not UTF-8 (which encoding/json would
// silently replace with U+FFFD), with messages that name the problem.
func unmarshalStrict(data []byte, dst any) error {
	if !utf8.Valid(data) {
		return badRequest("invalid_json", "request body is not valid UTF-8 (at byte %d); JSON text must be UTF-8", invalidUTF8At(data))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid_json", "request body must hold a single JSON object, found more after it")
	}
	return nil
}

// invalidUTF8At returns the offset of the first byte of data that does not
// start a valid UTF-8 sequence, or len(data).
func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(data)
}

func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return badRequest("invalid_json", "request body is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typ):
		return badRequest("invalid_json", "field %q must be %s, not a JSON %s", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid_json", "request body is truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown_field", "request body has unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("invalid_json", "request body is not valid JSON: %v", err)
}

// storeUnavailable reports whether err means NATS could not be reached,
// which a retry may fix.
func storeUnavailable(err error) bool {
	for _, target := range []error{nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionClosed,
		nats.ErrConnectionReconnecting, nats.ErrDisconnected, jetstream.ErrNoStreamResponse, context.DeadlineExceeded} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "a " + kind
}
