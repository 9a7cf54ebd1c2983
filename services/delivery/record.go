package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/natstrace"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/webhookheaders"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

const (
	// redacted replaces secret header values in attempt records.
	redacted = "REDACTED"
	// maxRecordedHeaders and maxRecordedValue bound the response headers kept.
	maxRecordedHeaders = 64
	maxRecordedValue   = 1 << 10
	// maxRecordedError bounds the error text kept.
	maxRecordedError = 1 << 10
)

// newAttempt builds the record of attempt number n of d to ep.
func newAttempt(ctx context.Context, d *eventv1.Delivery, ep *configv1.Endpoint, n uint32, r *result) *eventv1.Attempt {
	a := &eventv1.Attempt{
		Id:              ids.New(ids.Attempt),
		MessageId:       d.GetMessageId(),
		TenantId:        d.GetTenantId(),
		EndpointId:      d.GetEndpointId(),
		EventType:       d.GetEventType(),
		Attempt:         n,
		Url:             ep.GetUrl(),
		StartedAt:       timestamppb.New(r.started),
		DurationUs:      r.duration.Microseconds(),
		Outcome:         r.outcome,
		StatusCode:      int32(r.status),
		RequestHeaders:  r.request,
		ResponseHeaders: headerList(r.response),
		ResponseBody:    r.body,
	}
	if r.err != nil {
		a.Error = truncate(r.err.Error(), maxRecordedError)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		a.TraceId = sc.TraceID().String()
	}
	return a
}

// headerList flattens h into lower-case name/value pairs sorted by name, with
// secret values redacted (credential names, and the names in extraSecret,
// lower case) and at most maxRecordedHeaders values of at most
// maxRecordedValue bytes each.
func headerList(h http.Header, extraSecret ...string) []*eventv1.Header {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []*eventv1.Header
	for _, name := range names {
		lower := strings.ToLower(name)
		for _, v := range h[name] {
			if len(out) == maxRecordedHeaders {
				return out
			}
			if secretHeader(lower) || slices.Contains(extraSecret, lower) {
				v = redacted
			}
			out = append(out, &eventv1.Header{Name: lower, Value: truncate(v, maxRecordedValue)})
		}
	}
	return out
}

// secretHeader reports whether a header's value must not be stored: the
// signature, and every name that carries a credential.
func secretHeader(lower string) bool {
	return lower == "webhook-signature" || webhookheaders.Credential(lower)
}

// requestHeaderList is headerList of a request to ep, also redacting the
// custom headers the endpoint marks secret.
func requestHeaderList(h http.Header, ep *configv1.Endpoint) []*eventv1.Header {
	secret := make([]string, len(ep.GetSecretHeaders()))
	for i, name := range ep.GetSecretHeaders() {
		secret[i] = strings.ToLower(name)
	}
	return headerList(h, secret...)
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Storing attempt records: every try waits recordTryTimeout for the
// stream's ack; failed tries are repeated after recordBackoffMin, doubling
// to recordBackoffMax, for as long as the connection is open.
const (
	recordTryTimeout = 2 * time.Second
	recordBackoffMin = 100 * time.Millisecond
	recordBackoffMax = 2 * time.Second
)

// recorder stores attempt records in the ATTEMPTS stream.
type recorder struct {
	js     jetstream.JetStream
	tracer trace.Tracer
}

// errConnClosed means the NATS connection was closed: the record cannot be
// stored by this worker any more.
var errConnClosed = errors.New("nats connection closed")

// record publishes a to ATTEMPTS with Nats-Msg-Id = its id and the trace
// context of ctx, and waits for the stream's ack. A failed try (no
// responders during a leader election, an ack timeout, the connection
// reconnecting) is repeated with backoff until the stream has stored it, so a
// NATS failover delays the delivery's ack instead of losing its record; the
// message id makes a try that was stored but whose ack was lost count once
// (within the stream's duplicate window, 2 minutes). It gives up only when
// ctx ends or the connection is closed (the worker is gone), returning the
// last error; log gets a warning when the first try fails and every 10
// tries after it.
func (rc recorder) record(ctx context.Context, log *slog.Logger, a *eventv1.Attempt) error {
	data, err := proto.Marshal(a)
	if err != nil {
		return fmt.Errorf("marshal attempt %s: %w", a.GetId(), err)
	}
	return rc.store(ctx, log, streams.AttemptSubject(a.GetTenantId(), a.GetEndpointId()), a.GetId(), data)
}

// store publishes data on subject with Nats-Msg-Id id and the trace context
// of ctx, retrying as record describes.
func (rc recorder) store(ctx context.Context, log *slog.Logger, subject, id string, data []byte) error {
	var err error
	ctx, span := natstrace.StartPublish(ctx, rc.tracer, recordSpanName, subject, id)
	defer span.End()
	delay := recordBackoffMin
	for try := 1; ; try++ {
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		natsx.Inject(ctx, msg)
		tctx, cancel := context.WithTimeout(ctx, recordTryTimeout)
		_, err = rc.js.PublishMsg(tctx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			if try > 1 {
				log.InfoContext(ctx, "record stored after retries", "record_id", id, "tries", try)
			}
			return nil
		}
		if rc.js.Conn().IsClosed() {
			err = fmt.Errorf("store record %s: %w (%w)", id, errConnClosed, err)
			span.RecordError(err)
			span.SetStatus(codes.Error, "record not stored")
			return err
		}
		if try%10 == 1 {
			log.WarnContext(ctx, "record not stored yet; retrying, the delivery stays held", "record_id", id, "tries", try, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			err = fmt.Errorf("store record %s: %w (last try: %w)", id, context.Cause(ctx), err)
			span.RecordError(err)
			span.SetStatus(codes.Error, "record not stored")
			return err
		case <-t.C:
		}
		delay = min(2*delay, recordBackoffMax)
	}
}
