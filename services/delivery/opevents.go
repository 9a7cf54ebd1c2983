package delivery

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

const (
	// opPublishTries bounds the publishes of one operational event.
	opPublishTries = 4
	// opPublishTimeout bounds the wait for one publish's ack.
	opPublishTimeout = 2 * time.Second
	// opPublishBackoff is the wait after the first failed publish; it
	// doubles after each.
	opPublishBackoff = 100 * time.Millisecond
)

// publisher is the part of jetstream.JetStream opEvents uses.
type publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// opEvents publishes operational events (eventv1.OperationalEvent, protobuf)
// on pulsehooks.operational.<type> with a JetStream publish that waits for
// the OPERATIONAL stream's ack, so a subscriber that is down can read them
// later; core NATS subscribers of the subjects receive them as well. Each
// event has a deterministic Nats-Msg-Id, so a publish retried after a lost
// ack is stored once (core subscribers may see the repeat: the header is the
// key to drop it). A publish that fails is retried a few times; one that
// still fails is logged as an error, never dropped silently.
type opEvents struct {
	js  publisher
	log *slog.Logger
	// tries, timeout and backoff override the opPublish* constants (tests).
	tries   int
	timeout time.Duration
	backoff time.Duration
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

// publish sends ev with the trace context of ctx, under the Nats-Msg-Id
// <type>.<attempt id>: an attempt causes at most one event of each type.
func (o opEvents) publish(ctx context.Context, ev *eventv1.OperationalEvent) {
	o.publishAs(ctx, ev, streams.OperationalMsgID(ev.GetType(), ev.GetAttemptId()))
}

// publishDisabled sends ev, an endpoint.disabled event, under the Nats-Msg-Id
// endpoint.disabled.<endpoint>.<revision>: the revision that disabled it,
// whichever attempt and worker report it.
func (o opEvents) publishDisabled(ctx context.Context, ev *eventv1.OperationalEvent, revision uint64) {
	if revision == 0 {
		o.publish(ctx, ev)
		return
	}
	o.publishAs(ctx, ev, streams.OperationalMsgID(ev.GetType(), ev.GetEndpointId()+"."+strconv.FormatUint(revision, 10)))
}

// publishAs sends ev with Nats-Msg-Id id and waits for the stream's ack,
// trying again after a failure up to opPublishTries times in all.
func (o opEvents) publishAs(ctx context.Context, ev *eventv1.OperationalEvent, id string) {
	log := o.log.With("type", ev.GetType(), "endpoint_id", ev.GetEndpointId(), "message_id", ev.GetMessageId(), "attempt", ev.GetAttempt(), "nats_msg_id", id)
	data, err := proto.Marshal(ev)
	if err != nil {
		log.ErrorContext(ctx, "operational event not published: cannot encode it", "err", err)
		return
	}
	tries, timeout, backoff := o.tries, o.timeout, o.backoff
	if tries <= 0 {
		tries = opPublishTries
	}
	if timeout <= 0 {
		timeout = opPublishTimeout
	}
	if backoff <= 0 {
		backoff = opPublishBackoff
	}
	for try := 1; ; try++ {
		// A fresh message each time: the client adds to the headers.
		msg := &nats.Msg{Subject: streams.OperationalSubject(ev.GetType()), Data: data, Header: nats.Header{}}
		natsx.Inject(ctx, msg)
		msg.Header.Set(jetstream.MsgIDHeader, id)
		pctx, cancel := context.WithTimeout(ctx, timeout)
		ack, err := o.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			log.InfoContext(ctx, "operational event", "reason", ev.GetReason(), "stream", ack.Stream, "seq", ack.Sequence, "duplicate", ack.Duplicate)
			return
		}
		if try >= tries || ctx.Err() != nil {
			log.ErrorContext(ctx, "operational event not published", "tries", try, "err", err)
			return
		}
		log.WarnContext(ctx, "operational event publish failed; retrying", "try", try, "retry_in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff *= 2
	}
}
