// Package pulseclient is the Go client job processors use to publish job
// status changes to pulsehooks ingest over NATS request/reply.
//
// A publish returns only after ingest has stored the event, so a nil error
// means the event will be delivered. Publish retries while ingest is
// unreachable or unavailable, until its context ends; every retry carries the
// same idempotency key, so a retried publish is stored once.
//
//	nc, err := nats.Connect(url)
//	...
//	client := pulseclient.New(nc)
//	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
//	defer cancel()
//	res, err := client.Publish(ctx, pulseclient.PublishInput{
//		TenantID:       "ten_01J…",
//		EventType:      "job.completed",
//		Data:           map[string]any{"job_id": "job_123", "status": "completed"},
//		IdempotencyKey: "job_123/completed",
//	})
//	var perr *pulseclient.Error
//	if errors.As(err, &perr) && perr.Code == pulseclient.CodeUnknownEventType {
//		// a bug in the caller: retrying will not help
//	}
package pulseclient

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// DefaultSubject is the NATS subject ingest serves publishes on.
const DefaultSubject = "pulsehooks.ingest.v1.publish"

// Defaults of the client options.
const (
	DefaultAttemptTimeout = 5 * time.Second
	DefaultMinBackoff     = 50 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
)

// Client publishes events to ingest. It is safe for concurrent use.
type Client struct {
	nc             *nats.Conn
	subject        string
	attemptTimeout time.Duration
	minBackoff     time.Duration
	maxBackoff     time.Duration
	propagator     propagation.TextMapPropagator
}

// Option configures a Client.
type Option func(*Client)

// WithSubject sets the ingest subject (default DefaultSubject).
func WithSubject(subject string) Option {
	return func(c *Client) { c.subject = subject }
}

// WithAttemptTimeout sets how long one attempt waits for ingest's reply
// (default DefaultAttemptTimeout). A timed-out attempt is retried.
func WithAttemptTimeout(d time.Duration) Option {
	return func(c *Client) { c.attemptTimeout = d }
}

// WithBackoff sets the first and the largest delay between attempts (defaults
// DefaultMinBackoff and DefaultMaxBackoff); each delay has ±20% jitter.
func WithBackoff(minDelay, maxDelay time.Duration) Option {
	return func(c *Client) { c.minBackoff, c.maxBackoff = minDelay, maxDelay }
}

// WithPropagator sets how trace context is written into request headers
// (default W3C trace context).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *Client) { c.propagator = p }
}

// New returns a Client publishing over nc.
func New(nc *nats.Conn, opts ...Option) *Client {
	c := &Client{
		nc:             nc,
		subject:        DefaultSubject,
		attemptTimeout: DefaultAttemptTimeout,
		minBackoff:     DefaultMinBackoff,
		maxBackoff:     DefaultMaxBackoff,
		propagator:     propagation.TraceContext{},
	}
	for _, o := range opts {
		o(c)
	}
	if c.attemptTimeout <= 0 {
		c.attemptTimeout = DefaultAttemptTimeout
	}
	if c.maxBackoff < c.minBackoff {
		c.maxBackoff = c.minBackoff
	}
	return c
}

// PublishInput is one job status change.
type PublishInput struct {
	// TenantID is the tenant the event belongs to.
	TenantID string
	// EventType is a catalog event type, such as "job.completed".
	EventType string
	// Data is the event's data, which must encode to a JSON object. A
	// json.RawMessage is sent as is; anything else goes through json.Marshal.
	Data any
	// IdempotencyKey makes publishes with the same key, for the same tenant,
	// within 24 hours return the first message id and store nothing new.
	// When empty, Publish generates one, so its own retries are still safe.
	IdempotencyKey string
	// Timestamp is when the event happened; zero means now.
	Timestamp time.Time
}

// PublishResult is what ingest answered.
type PublishResult struct {
	// MessageID is the event's message id ("msg_…"), the webhook-id header of
	// every delivery.
	MessageID string
	// Duplicate is true when the idempotency key had been used before and
	// nothing new was stored.
	Duplicate bool
}

// Publish sends in to ingest and waits until it is stored. It retries on no
// responders, timeouts and 503 and 504 replies with backoff until ctx ends; any other
// error reply is returned at once as an *Error. The trace context of ctx is
// carried in the request headers.
func (c *Client) Publish(ctx context.Context, in PublishInput) (PublishResult, error) {
	body, err := encodeRequest(in)
	if err != nil {
		return PublishResult{}, err
	}
	b := backoff{next: c.minBackoff, max: c.maxBackoff}
	// last is the most telling failure so far: an attempt cut short by ctx
	// says less than the one before it.
	var last error
	for attempt := 1; ; attempt++ {
		res, err := c.attempt(ctx, body)
		if err == nil {
			return res, nil
		}
		if last == nil || !isContextErr(err) {
			last = err
		}
		if ctx.Err() != nil {
			return PublishResult{}, gaveUp(ctx, in, attempt, last)
		}
		if !retryable(err) {
			return PublishResult{}, fmt.Errorf("publish %s for tenant %s: %w", in.EventType, in.TenantID, err)
		}
		t := time.NewTimer(b.delay())
		select {
		case <-ctx.Done():
			t.Stop()
			return PublishResult{}, gaveUp(ctx, in, attempt, last)
		case <-t.C:
		}
	}
}

// gaveUp is the error of a Publish whose context ended: it wraps both the
// context's error and the last attempt's.
func gaveUp(ctx context.Context, in PublishInput, attempts int, last error) error {
	cause := context.Cause(ctx)
	if !errors.Is(last, cause) {
		cause = errors.Join(cause, last)
	}
	return fmt.Errorf("publish %s for tenant %s: gave up after %d attempts: %w", in.EventType, in.TenantID, attempts, cause)
}

// isContextErr reports whether err is a context's end.
func isContextErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// encodeRequest builds the protobuf request, generating an idempotency key
// when none is given.
func encodeRequest(in PublishInput) ([]byte, error) {
	data, err := encodeData(in.Data)
	if err != nil {
		return nil, err
	}
	key := in.IdempotencyKey
	if key == "" {
		key = "pc_" + rand.Text()
	}
	req := &eventv1.PublishRequest{
		TenantId:       in.TenantID,
		EventType:      in.EventType,
		Data:           data,
		IdempotencyKey: key,
	}
	if !in.Timestamp.IsZero() {
		req.Timestamp = timestamppb.New(in.Timestamp)
	}
	body, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode publish request: %w", err)
	}
	return body, nil
}

func encodeData(data any) ([]byte, error) {
	if raw, ok := data.(json.RawMessage); ok {
		return raw, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode event data as JSON: %w", err)
	}
	return b, nil
}

// attempt sends one request and decodes the reply.
func (c *Client) attempt(ctx context.Context, body []byte) (PublishResult, error) {
	msg := &nats.Msg{Subject: c.subject, Data: body, Header: nats.Header{}}
	c.propagator.Inject(ctx, natsx.HeaderCarrier(msg.Header))
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	reply, err := c.nc.RequestMsgWithContext(actx, msg)
	if err != nil {
		return PublishResult{}, fmt.Errorf("request %s: %w", c.subject, err)
	}
	return decodeReply(reply)
}

// decodeReply turns a micro service error reply into an *Error and a success
// reply into a PublishResult.
func decodeReply(reply *nats.Msg) (PublishResult, error) {
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		e := &Error{Message: reply.Header.Get(micro.ErrorHeader)}
		e.Status, _ = strconv.Atoi(code)
		var body eventv1.Error
		if err := proto.Unmarshal(reply.Data, &body); err == nil {
			if body.GetCode() != "" {
				e.Code = body.GetCode()
			}
			if body.GetMessage() != "" {
				e.Message = body.GetMessage()
			}
		}
		return PublishResult{}, e
	}
	var resp eventv1.PublishResponse
	if err := proto.Unmarshal(reply.Data, &resp); err != nil {
		return PublishResult{}, fmt.Errorf("decode ingest reply: %w", err)
	}
	if resp.GetMessageId() == "" {
		return PublishResult{}, errors.New("decode ingest reply: no message id")
	}
	return PublishResult{MessageID: resp.GetMessageId(), Duplicate: resp.GetDuplicate()}, nil
}

// retryable reports whether err may pass on another attempt: ingest not
// (yet) subscribed, no reply within the attempt timeout, or a 503 or 504
// reply.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	return errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded)
}
