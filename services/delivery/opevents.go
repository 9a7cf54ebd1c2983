package delivery

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// opEvents publishes operational events (eventv1.OperationalEvent, protobuf)
// on core NATS, pulsehooks.operational.<type>. They are notifications for
// Pulse's own systems, not a durable record (ATTEMPTS is): one published
// while NATS is unreachable is lost, and is logged.
type opEvents struct {
	nc  *nats.Conn
	log *slog.Logger
}

// attemptEvent returns the operational event of type typ about attempt a.
func attemptEvent(typ string, a *eventv1.Attempt, reason string) *eventv1.OperationalEvent {
	return &eventv1.OperationalEvent{
		Type:          typ,
		OccurredAt:    timestamppb.New(time.Now()),
		TenantId:      a.GetTenantId(),
		EndpointId:    a.GetEndpointId(),
		MessageId:     a.GetMessageId(),
		EventType:     a.GetEventType(),
		Attempt:       a.GetAttempt(),
		AttemptId:     a.GetId(),
		Outcome:       a.GetOutcome(),
		StatusCode:    a.GetStatusCode(),
		Reason:        reason,
		NextAttemptAt: a.GetNextAttemptAt(),
	}
}

// publish sends ev with the trace context of ctx.
func (o opEvents) publish(ctx context.Context, ev *eventv1.OperationalEvent) {
	data, err := proto.Marshal(ev)
	if err != nil {
		o.log.ErrorContext(ctx, "encode operational event", "type", ev.GetType(), "err", err)
		return
	}
	msg := &nats.Msg{Subject: streams.OperationalSubject(ev.GetType()), Data: data, Header: nats.Header{}}
	natsx.Inject(ctx, msg)
	if err := o.nc.PublishMsg(msg); err != nil {
		o.log.ErrorContext(ctx, "operational event not published", "type", ev.GetType(), "endpoint_id", ev.GetEndpointId(), "message_id", ev.GetMessageId(), "err", err)
		return
	}
	o.log.InfoContext(ctx, "operational event", "type", ev.GetType(), "endpoint_id", ev.GetEndpointId(), "message_id", ev.GetMessageId(), "attempt", ev.GetAttempt(), "reason", ev.GetReason())
}
