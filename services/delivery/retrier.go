package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Retrier takes a delivery whose attempt failed and arranges the next
// attempt, settling msg (the delivery's JetStream message) one way or another.
// It is the one place that decides when a failed delivery is tried again.
type Retrier interface {
	Retry(ctx context.Context, msg jetstream.Msg, d *eventv1.Delivery, a *eventv1.Attempt) error
}

// nakRetrier retries by nakking the message with a fixed delay, so JetStream
// redelivers it later. The Redis retry schedule (backoff, Retry-After, 410
// handling, final failure) replaces it.
type nakRetrier struct {
	delay time.Duration
}

// Retry naks msg with the configured delay.
func (r nakRetrier) Retry(_ context.Context, msg jetstream.Msg, d *eventv1.Delivery, _ *eventv1.Attempt) error {
	if err := msg.NakWithDelay(r.delay); err != nil {
		return fmt.Errorf("nak delivery %s: %w", d.GetMessageId(), err)
	}
	return nil
}
