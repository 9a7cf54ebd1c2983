package delivery

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/natstrace"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Span names and attributes of this package beyond the delivery span's.
const (
	putOffSpanName = "delivery put off"
	attrPutOffWhy  = attribute.Key("pulsehooks.put_off.reason")
	attrPutOffDue  = attribute.Key("pulsehooks.put_off.due")
)

var (
	recordSpanName = natstrace.PublishSpanName(streams.Attempts)
	returnSpanName = natstrace.PublishSpanName(streams.Deliveries)
	// consumerKind is shared by the start of every delivery span without
	// a link (Start does not keep or modify its options).
	consumerKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
)

// consumerSpanOptions are the start options of the delivery span of d,
// delivered as msg, inside ctx's trace: a consumer span, linked to the
// attempt that scheduled it when d returns from the schedule in a sampled
// trace (the link travels in natsx.LinkHeader).
func consumerSpanOptions(ctx context.Context, d *eventv1.Delivery, msg jetstream.Msg) []trace.SpanStartOption {
	if d.GetScheduleCount() == 0 || !trace.SpanContextFromContext(ctx).IsSampled() {
		return consumerKind
	}
	link, ok := natsx.ExtractLink(msg.Headers())
	if !ok {
		return consumerKind
	}
	return []trace.SpanStartOption{consumerKind[0], trace.WithLinks(trace.Link{SpanContext: link})}
}

// processAttrs are the messaging attributes of the span processing msg.
func processAttrs(msg jetstream.Msg) []attribute.KeyValue {
	group := ""
	if meta, err := msg.Metadata(); err == nil {
		group = meta.Consumer
	}
	return natstrace.ProcessAttrs(msg.Subject(), group, msg.Headers().Get(jetstream.MsgIDHeader))
}

// linkToAttempt makes it name the attempt span of ctx when that span is
// sampled, so that the delivery's return from the schedule is linked to it.
// Its trace is stored too for a resend, whose first attempt runs in the
// resend's trace rather than the event's.
func linkToAttempt(ctx context.Context, it *retryq.Item) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return
	}
	it.Link = sc.SpanID()
	if it.ResendID != "" {
		it.LinkTrace = sc.TraceID()
	}
}

// returnLink is the span context a scheduled item c links its return to,
// in trace (the event's) unless c names its own.
func returnLink(c retryq.Claimed, trace0 trace.TraceID) trace.SpanContext {
	if !c.Link.IsValid() {
		return trace.SpanContext{}
	}
	if c.LinkTrace.IsValid() {
		trace0 = c.LinkTrace
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace0, SpanID: c.Link, TraceFlags: trace.FlagsSampled, Remote: true,
	})
}

// startPutOff starts the span of putting j off until due, for why: a
// child of the delivery span when the delivery got that far, else (put off
// by the partition, ctx holding the message's remote trace context) the
// consumer span of the message. Unsampled, it starts nothing.
func (dl *deliverer) startPutOff(ctx context.Context, j *job, due time.Time, why string) (context.Context, trace.Span) {
	sc := trace.SpanContextFromContext(ctx)
	if sc.IsValid() && !sc.IsSampled() {
		return ctx, trace.SpanFromContext(context.Background())
	}
	kind := trace.SpanKindInternal
	if sc.IsRemote() {
		kind = trace.SpanKindConsumer
	}
	ctx, span := dl.tracer.Start(ctx, putOffSpanName, trace.WithSpanKind(kind))
	if span.IsRecording() {
		span.SetAttributes(attrPutOffWhy.String(why), attrPutOffDue.String(due.UTC().Format(time.RFC3339Nano)))
		if kind == trace.SpanKindConsumer {
			d := j.delivery
			span.SetAttributes(
				attribute.String("pulsehooks.tenant_id", d.GetTenantId()),
				attribute.String("pulsehooks.endpoint_id", d.GetEndpointId()),
				attribute.String("pulsehooks.message_id", d.GetMessageId()),
			)
			span.SetAttributes(processAttrs(j.current())...)
		}
	}
	return ctx, span
}

// clientAttrs are the HTTP client span's attributes of a POST to u: the
// server, scheme and path, and url.full without userinfo and with every
// query value REDACTED, so that no credential an endpoint URL carries
// reaches a trace.
func clientAttrs(u *url.URL) []attribute.KeyValue {
	host, port := u.Hostname(), 0
	if p := u.Port(); p != "" {
		port, _ = strconv.Atoi(p)
	} else if u.Scheme == "https" {
		port = 443
	} else {
		port = 80
	}
	return []attribute.KeyValue{
		semconv.HTTPRequestMethodPost,
		semconv.ServerAddress(host),
		semconv.ServerPort(port),
		semconv.URLScheme(u.Scheme),
		semconv.URLPath(u.EscapedPath()),
		semconv.URLFull(redactURL(u)),
	}
}

// redactURL is u without userinfo or fragment, its query values REDACTED.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{redacted}
		}
		r.RawQuery = q.Encode()
	}
	return r.String()
}

// redactURLError is err without the request URL an *url.Error names (its
// query or userinfo may hold a secret): the cause alone.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
