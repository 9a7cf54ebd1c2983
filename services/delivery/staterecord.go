package delivery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// State records: a delivery put off or dropped without an attempt is
// recorded in the STATES stream before it is acked, so the attempt log shows
// what the worker decided. Only those two paths pay for it (one async
// JetStream publish, awaited after the Redis write it overlaps); an attempt
// is recorded by its own record and adds nothing here.

// stateRecord is the record of decision st about d made now.
func stateRecord(d *eventv1.Delivery, st eventv1.DeliveryState, why string, now, due time.Time) *eventv1.StateRecord {
	r := &eventv1.StateRecord{
		Id:          ids.New(ids.State),
		TenantId:    d.GetTenantId(),
		MessageId:   d.GetMessageId(),
		EventType:   d.GetEventType(),
		EndpointIds: []string{d.GetEndpointId()},
		State:       st,
		Reason:      why,
		At:          timestamppb.New(now),
		Attempts:    d.GetAttempt(),
		ResendId:    d.GetResendId(),
	}
	if !due.IsZero() {
		r.NextAttemptAt = timestamppb.New(due)
	}
	return r
}

// pendingState is a state record on its way to the stream.
type pendingState struct {
	r    *eventv1.StateRecord
	msg  *nats.Msg
	fut  jetstream.PubAckFuture
	perr error
}

// startState publishes r without waiting; awaitState waits for it.
func (rc recorder) startState(r *eventv1.StateRecord) *pendingState {
	data, err := proto.Marshal(r)
	p := &pendingState{r: r, perr: err}
	if err != nil {
		return p
	}
	p.msg = &nats.Msg{
		Subject: streams.StateSubject(r.GetTenantId(), streams.StateSourceDelivery),
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{r.GetId()}},
	}
	p.fut, p.perr = rc.js.PublishMsgAsync(p.msg)
	return p
}

// awaitState waits for p's store ack, and when the asynchronous publish
// failed stores it again like an attempt record (retried until stored or
// the connection is closed). It reports whether the record is stored.
func (rc recorder) awaitState(ctx context.Context, log *slog.Logger, p *pendingState) bool {
	if p.msg == nil {
		log.ErrorContext(ctx, "state record not encoded", "err", p.perr)
		return true // nothing to wait for; the delivery itself is safe
	}
	if p.perr == nil {
		t := time.NewTimer(recordTryTimeout)
		defer t.Stop()
		select {
		case <-p.fut.Ok():
			return true
		case p.perr = <-p.fut.Err():
		case <-t.C:
			p.perr = fmt.Errorf("no store ack within %v", recordTryTimeout)
		case <-ctx.Done():
			p.perr = context.Cause(ctx)
		}
	}
	if err := rc.store(ctx, log, p.msg.Subject, p.r.GetId(), p.msg.Data); err != nil {
		log.ErrorContext(ctx, "state record not stored; the delivery is left unacked", "state_id", p.r.GetId(), "err", err)
		return false
	}
	return true
}

// dropped records that d is dropped without an attempt (why: its
// endpoint is disabled or deleted) and acks it; without the record stored
// it is left for JetStream to deliver again.
func (dl *deliverer) dropped(ctx context.Context, log *slog.Logger, j *job, why string) {
	p := dl.recorder.startState(stateRecord(j.delivery, eventv1.DeliveryState_DELIVERY_STATE_DROPPED, why, time.Now(), time.Time{}))
	if !dl.recorder.awaitState(ctx, log, p) {
		dl.leave(ctx, log, j)
		return
	}
	dl.ack(ctx, log, j)
}
