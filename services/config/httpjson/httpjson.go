// Package httpjson writes the JSON answers of the config service's HTTP
// APIs: a value as the body, and the error envelope
// {"error":{"code","message","field"?}} that every API and the portal share.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error of an ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the invalid input field of a validation error.
	Field string `json:"field,omitempty"`
}

// Write writes v as the JSON response body with the given status; answers
// are never cached.
func Write(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v) // the client may be gone; nothing else to tell it
}

// Error writes an error envelope with the given status, code and message.
func Error(w http.ResponseWriter, status int, code, message string) {
	Write(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
}
