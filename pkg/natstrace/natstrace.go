// Package natstrace names the spans of JetStream publishes and deliveries
// after the OpenTelemetry messaging semantic conventions (semconv v1.43.0):
// producer spans for publishes, and the attributes of the consumer spans
// that process a delivered message.
//
// Attributes are only worth their allocations on recorded spans, so callers
// set them (and start producer spans) only when the span is recording; an
// unsampled trace pays nothing here.
package natstrace

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// System is the messaging.system of every pulsehooks span. NATS has no
// well-known value in the conventions; "nats" is what its users record.
const System = "nats"

// Operation names (messaging.operation.name): the JetStream operation a
// span stands for.
const (
	// OpPublish is a JetStream publish that waits for the stream's ack.
	OpPublish = "publish"
	// OpProcess is the handling of one delivered message, up to its ack.
	OpProcess = "process"
)

var systemAttr = semconv.MessagingSystemKey.String(System)

// PublishAttrs are the attributes of a producer span that publishes a
// message with id msgID (Nats-Msg-Id) to subject.
func PublishAttrs(subject, msgID string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		systemAttr,
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName(OpPublish),
		semconv.MessagingDestinationName(subject),
	}
	if msgID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(msgID))
	}
	return attrs
}

// ProcessAttrs are the attributes of a consumer span that processes a
// message with id msgID, delivered from subject to the durable consumer
// group.
func ProcessAttrs(subject, group, msgID string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		systemAttr,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName(OpProcess),
		semconv.MessagingDestinationName(subject),
		semconv.MessagingConsumerGroupName(group),
	}
	if msgID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(msgID))
	}
	return attrs
}

// PublishSpanName is the name of the producer span of a publish to stream:
// the conventions name spans after the operation and a low-cardinality
// destination.
func PublishSpanName(stream string) string { return OpPublish + " " + stream }

// StartPublish starts the producer span, named name (see PublishSpanName),
// of a publish of message msgID to subject, with the attributes set when the
// span is recording. Inject the returned context into the message so that
// its consumer continues this span's trace.
//
// Inside an unsampled trace it starts nothing and returns ctx and its span:
// a span nobody records would cost an id and an allocation per message,
// and the consumer continues the same trace either way.
func StartPublish(ctx context.Context, tracer trace.Tracer, name, subject, msgID string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsSampled() {
		// A span that does nothing, not ctx's own, which the caller ends.
		return ctx, trace.SpanFromContext(context.Background())
	}
	opts = append(opts, trace.WithSpanKind(trace.SpanKindProducer))
	ctx, span := tracer.Start(ctx, name, opts...)
	if span.IsRecording() {
		span.SetAttributes(PublishAttrs(subject, msgID)...)
	}
	return ctx, span
}
