package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
)

// problem is a publish that failed in a way the publisher is told about: an
// HTTP-like status, a stable code (the pulseclient.Code constants) and a
// message for people. cause, when set, is logged but never sent.
type problem struct {
	status  int
	code    string
	message string
	// field names the invalid input, such as data/status, when one is to blame.
	field string
	cause error
	// retryAfter, for 429, is when the tenant's rate allows the next event.
	retryAfter time.Duration
}

// Error formats the problem, with its cause.
func (p *problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%d %s: %s: %v", p.status, p.code, p.message, p.cause)
	}
	return fmt.Sprintf("%d %s: %s", p.status, p.code, p.message)
}

// Unwrap returns the cause.
func (p *problem) Unwrap() error { return p.cause }

func badRequest(code, format string, args ...any) *problem {
	return &problem{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *problem {
	return &problem{status: http.StatusRequestEntityTooLarge, code: pulseclient.CodePayloadTooLarge, message: fmt.Sprintf(format, args...)}
}

func unprocessable(code, format string, args ...any) *problem {
	return &problem{status: http.StatusUnprocessableEntity, code: code, message: fmt.Sprintf(format, args...)}
}

// unavailable is a failure the publisher should retry (with the same
// idempotency key).
func unavailable(message string, cause error) *problem {
	return &problem{status: http.StatusServiceUnavailable, code: pulseclient.CodeUnavailable, message: message, cause: cause}
}

// outcomeUnknown is a publish whose stream ack did not come in time: the
// event may have been stored, which no other error answer allows.
func outcomeUnknown(cause error) *problem {
	return &problem{status: http.StatusGatewayTimeout, code: pulseclient.CodeTimeout,
		message: "timed out waiting for the event stream; the event may have been stored: retry with the same idempotency key",
		cause:   cause}
}

// asProblem returns err as a problem, turning unexpected errors into 500s
// whose details stay in the logs.
func asProblem(err error) *problem {
	var p *problem
	if errors.As(err, &p) {
		return p
	}
	return &problem{status: http.StatusInternalServerError, code: pulseclient.CodeInternal, message: "internal error", cause: err}
}
