package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

const (
	// maxResponseBody is how much of a response body is kept for the attempt record.
	maxResponseBody = 4 << 10
	// maxResponseDrain bounds how much more is read and discarded so the
	// connection can be reused; a larger body closes the connection instead.
	maxResponseDrain = 64 << 10
)

// result is what one HTTP attempt produced.
type result struct {
	started  time.Time
	duration time.Duration
	outcome  eventv1.Outcome
	status   int
	err      error
	// request is the header sent, as recorded: redacted and bounded (the
	// trace context added for unsampled requests is not included).
	request  []*eventv1.Header
	response http.Header
	body     []byte
	// skipped lists custom headers that were not sent.
	skipped []string
}

// sender makes attempts over one HTTP client.
type sender struct {
	client *http.Client
	cfg    Config
	tracer trace.Tracer
}

// errGraceOver is the cause with which attempts still running when their
// partition's grace ends (at shutdown, or when the partition moves to
// another worker) are cancelled.
var errGraceOver = errors.New("attempt cut short: still running when the worker's grace ended")

// send POSTs d to ep, within the endpoint's timeout, and classifies the
// outcome. It returns an error, and no result, when the request could not
// even be made (no usable secret, a malformed URL): nothing was sent. When
// abort ends first, the attempt is cut short and its outcome is a timeout.
func (s *sender) send(ctx, abort context.Context, ep *configv1.Endpoint, d *eventv1.Delivery) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.attemptTimeout(ep.GetTimeoutMs()))
	defer cancel()
	ctx, cut := context.WithCancelCause(ctx)
	defer cut(nil)
	stop := context.AfterFunc(abort, func() { cut(context.Cause(abort)) })
	defer stop()
	// The HTTP client span, for sampled traces only: an unsampled one would
	// only cost (a few per cent of the CPU per delivery with otelhttp).
	var span trace.Span
	sc := trace.SpanContextFromContext(ctx)
	if sc.IsSampled() {
		ctx, span = s.tracer.Start(ctx, http.MethodPost, trace.WithSpanKind(trace.SpanKindClient))
		defer span.End()
	}
	started := time.Now()
	req, skipped, err := buildRequest(ctx, ep, d, s.cfg.UserAgent, started)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	r := &result{started: started, request: requestHeaderList(req.Header, ep), skipped: skipped}
	if sc.IsValid() {
		// The endpoint gets the trace context (of the client span when
		// sampled); it is not part of the recorded request headers.
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	if span != nil {
		span.SetAttributes(clientAttrs(req.URL)...)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		r.duration = time.Since(started)
		r.err = err
		r.outcome = classify(err, 0)
		if cause := context.Cause(ctx); errors.Is(cause, errGraceOver) {
			r.err = fmt.Errorf("%w: %w", cause, err)
			r.outcome = eventv1.Outcome_OUTCOME_TIMEOUT
		}
		if span != nil {
			span.SetAttributes(semconv.ErrorTypeKey.String(r.outcome.String()))
			span.SetStatus(codes.Error, redactURLError(err).Error())
		}
		return r, nil
	}
	if span != nil {
		span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
		if resp.StatusCode >= http.StatusBadRequest {
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
			span.SetStatus(codes.Error, "")
		}
	}
	r.status = resp.StatusCode
	r.response = resp.Header
	// A failed or timed-out body read does not change the outcome: the
	// status line decided it, and the receiver has the request.
	r.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	r.duration = time.Since(started)
	_, _ = io.CopyN(io.Discard, resp.Body, maxResponseDrain)
	_ = resp.Body.Close()
	r.outcome = classify(nil, resp.StatusCode)
	return r, nil
}
