package delivery

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// job is one delivery held by this worker from the moment it is pulled until
// it is acked or nakked ("settled"). Its identity is the stream sequence, which
// stays the same when JetStream redelivers the message.
type job struct {
	seq      uint64
	delivery *eventv1.Delivery
	// stored is when the message was stored in DELIVERIES.
	stored time.Time
	// abort ends when the partition's grace is over: an attempt still
	// running is then cut short and settled as a timeout.
	abort context.Context

	mu      sync.Mutex
	msg     jetstream.Msg // the newest delivery of the message
	settled bool
	touched time.Time // last receipt or InProgress
}

func newJob(abort context.Context, msg jetstream.Msg, d *eventv1.Delivery, meta *jetstream.MsgMetadata, now time.Time) *job {
	return &job{
		abort:    abort,
		seq:      meta.Sequence.Stream,
		delivery: d,
		stored:   meta.Timestamp,
		msg:      msg,
		touched:  now,
	}
}

// redelivered replaces the message handle with a newer delivery of the same
// message, so that the ack goes to the delivery JetStream considers current.
func (j *job) redelivered(msg jetstream.Msg, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.msg = msg
	j.touched = now
}

// current returns the newest delivery of the message.
func (j *job) current() jetstream.Msg {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.msg
}

// isSettled reports whether the job has been acked or nakked.
func (j *job) isSettled() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.settled
}

// settle marks the job settled and returns the message to ack or nak. No
// InProgress is sent after it, so a nak's delay is not reset by one.
func (j *job) settle() jetstream.Msg {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.settled = true
	return j.msg
}

// progress sends InProgress when the job is unsettled and was last touched
// at least every ago, so JetStream does not redeliver it while it waits in a
// lane or is in flight. It is sent under the lock: publish order on the
// connection then puts it before any later ack or nak.
func (j *job) progress(now time.Time, every time.Duration) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.settled || now.Sub(j.touched) < every {
		return nil
	}
	j.touched = now
	if err := j.msg.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		return err
	}
	return nil
}
