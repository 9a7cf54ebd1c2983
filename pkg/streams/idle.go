package streams

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// FanoutInfo returns the current state of the fanout consumer of EVENTS.
func FanoutInfo(ctx context.Context, js jetstream.JetStream) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, Events, FanoutConsumer)
	if err != nil {
		return nil, fmt.Errorf("look up consumer %s: %w", FanoutConsumer, err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("consumer %s info: %w", FanoutConsumer, err)
	}
	return ci, nil
}

// Idle reports, as an error, what is still in flight between the streams:
// events the fanout consumer has not settled, or deliveries left in the
// DELIVERIES work queue. It does not look at the Redis retry schedule.
// Tests and the benchmark harness poll it to know when a load has drained.
func Idle(ctx context.Context, js jetstream.JetStream) error {
	ci, err := FanoutInfo(ctx, js)
	if err != nil {
		return err
	}
	if ci.NumPending != 0 || ci.NumAckPending != 0 {
		return fmt.Errorf("fanout: %d events pending, %d awaiting ack", ci.NumPending, ci.NumAckPending)
	}
	st, err := js.Stream(ctx, Deliveries)
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", Deliveries, err)
	}
	si, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s info: %w", Deliveries, err)
	}
	if si.State.Msgs != 0 {
		return fmt.Errorf("%s holds %d deliveries", Deliveries, si.State.Msgs)
	}
	return nil
}
