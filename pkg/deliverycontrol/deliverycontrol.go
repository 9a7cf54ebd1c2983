// Package deliverycontrol holds the control requests the delivery workers
// answer over NATS request-reply, their messages, and the client function
// other services call them with. Today there is one: retry now, which makes
// every waiting delivery of an endpoint (retries and put-off deliveries in
// the Redis schedule) due at once.
package deliverycontrol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

const (
	// RetryNowSubject is the subject of retry-now requests.
	RetryNowSubject = "pulsehooks.control.retry_now"
	// Queue is the queue group the delivery workers answer control
	// requests in, so exactly one answers each.
	Queue = "pulsehooks-delivery"
)

// Error codes of a reply's error.
const (
	// CodeInvalid: the request is malformed.
	CodeInvalid = "invalid"
	// CodeNotFound: the workers do not know the endpoint for that tenant.
	CodeNotFound = "not_found"
	// CodeDisabled: the endpoint is disabled; its deliveries are dropped.
	CodeDisabled = "endpoint_disabled"
	// CodeUnavailable: the worker could not reach the schedule (Redis).
	CodeUnavailable = "unavailable"
)

// RetryNowRequest asks a delivery worker to make every waiting delivery of
// an endpoint due now.
type RetryNowRequest struct {
	TenantID   string `json:"tenant_id"`
	EndpointID string `json:"endpoint_id"`
}

// RetryNowReply is the answer: how many waiting deliveries were made due
// now, or why none were.
type RetryNowReply struct {
	Queued int    `json:"queued"`
	Error  *Error `json:"error,omitempty"`
}

// Error is a refused or failed control request, as the worker reports it.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// ErrNoWorker is returned when no delivery worker answered in time (none is
// running or subscribed, or the one asked did not answer before the
// context ended).
var ErrNoWorker = errors.New("no delivery worker answered")

// RetryNow asks one delivery worker to make every waiting delivery of the
// tenant's endpoint due now and returns how many it made due. ctx bounds
// the wait (give it a deadline: without one nats.go waits for its default
// timeout). A refusal is an *Error (errors.As); no answer wraps ErrNoWorker.
func RetryNow(ctx context.Context, nc *nats.Conn, tenantID, endpointID string) (int, error) {
	if tenantID == "" || endpointID == "" {
		return 0, &Error{Code: CodeInvalid, Message: "retry now needs a tenant and an endpoint"}
	}
	data, err := json.Marshal(RetryNowRequest{TenantID: tenantID, EndpointID: endpointID})
	if err != nil {
		return 0, fmt.Errorf("retry now: encode request: %w", err)
	}
	msg, err := nc.RequestWithContext(ctx, RetryNowSubject, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return 0, fmt.Errorf("retry now of %s: %w (%w)", endpointID, ErrNoWorker, err)
	case err != nil:
		return 0, fmt.Errorf("retry now of %s: %w", endpointID, err)
	}
	var reply RetryNowReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return 0, fmt.Errorf("retry now of %s: decode reply: %w", endpointID, err)
	}
	if reply.Error != nil {
		return 0, reply.Error
	}
	return reply.Queued, nil
}
