package pulseclient

import (
	"errors"
	"fmt"
	"net/http"
)

// Codes of the errors ingest returns, found in Error.Code. They are stable:
// programs may compare against them.
const (
	// CodeMalformedRequest: the request could not be decoded (bad protobuf,
	// malformed or trailing JSON, unknown fields).
	CodeMalformedRequest = "malformed_request"
	// CodeInvalidField: a required field is missing or a field is malformed.
	CodeInvalidField = "invalid_field"
	// CodeInvalidData: data is not a JSON object in valid UTF-8.
	CodeInvalidData = "invalid_data"
	// CodeInvalidTimestamp: the timestamp is malformed or too far from now.
	CodeInvalidTimestamp = "invalid_timestamp"
	// CodePayloadTooLarge: data (or the HTTP body) is over the size limit.
	CodePayloadTooLarge = "payload_too_large"
	// CodeUnknownTenant: the tenant does not exist.
	CodeUnknownTenant = "unknown_tenant"
	// CodeUnknownEventType: the event type is not in the catalog.
	CodeUnknownEventType = "unknown_event_type"
	// CodeRateLimited: the tenant is over its ingest quota (HTTP 429);
	// nothing was stored. Retry later.
	CodeRateLimited = "rate_limited"

	// CodeSchemaMismatch: data does not match the event type's JSON Schema;
	// the message names the failing path and rule.
	CodeSchemaMismatch = "schema_mismatch"
	// CodeUnavailable: ingest cannot store events right now and stored
	// nothing; retry later.
	CodeUnavailable = "unavailable"
	// CodeTimeout: the stream did not acknowledge the event in time (HTTP
	// 504), so it may or may not have been stored. Retry with the same
	// idempotency key: the retry stores it at most once.
	CodeTimeout = "timeout"
	// CodeInternal: an unexpected failure inside ingest.
	CodeInternal = "internal"
	// CodeUnauthorized: the HTTP request has no valid ingest token.
	CodeUnauthorized = "unauthorized"
	// CodeForbidden: the HTTP request is authenticated with a tenant API key,
	// which cannot publish job events.
	CodeForbidden = "forbidden"
	// CodeUnsupportedMediaType: the HTTP body is not application/json.
	CodeUnsupportedMediaType = "unsupported_media_type"
)

// Error is an error reply from ingest. Status is HTTP-like (400, 413, 422,
// 503…) and Code one of the Code constants. Use errors.As to get it from the
// error Publish returns.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error formats the status, code and message.
func (e *Error) Error() string {
	return fmt.Sprintf("pulsehooks ingest: %d %s: %s", e.Status, e.Code, e.Message)
}

// Temporary reports whether retrying the same request may succeed: true for
// 503 Service Unavailable and 504 Gateway Timeout only. Publish already
// retries those, with the same idempotency key, until its context ends.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
}

// IsCode reports whether err is, or wraps, an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
