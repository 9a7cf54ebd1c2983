package delivery

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// watchPull registers p's pull loop in the worker's liveness registry and
// makes its consumer beat each time the loop asks for the next delivery. It
// must be called before the loop starts.
func (s *Service) watchPull(p *partition) *health.Loop {
	if s.live == nil {
		return nil
	}
	loop := s.live.Loop("delivery: pull of "+streams.PartitionConsumer(p.index), p.deliveriesPending)
	p.consumer = beatingConsumer{Consumer: p.consumer, loop: loop}
	return loop
}

// deliveriesPending reports whether the partition has deliveries its
// consumer has not handed out yet that this worker should be pulling: the
// pin is this worker's, or nobody's. A partition pinned to another worker
// is that worker's to pull. One consumer info request.
func (p *partition) deliveriesPending(ctx context.Context) (bool, error) {
	info, err := p.consumer.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("consumer info of %s: %w", streams.PartitionConsumer(p.index), err)
	}
	if info.NumPending == 0 {
		return false, nil
	}
	mine, _ := p.pinID.Load().(string)
	for _, g := range info.PriorityGroups {
		if g.Group == streams.DeliveryGroup && g.PinnedClientID != "" && g.PinnedClientID != mine {
			return false, nil
		}
	}
	return true, nil
}

// beatingConsumer is a consumer whose message iterators beat loop each time
// the pull loop asks for the next message: the loop is not stuck handling
// the previous one.
type beatingConsumer struct {
	jetstream.Consumer
	loop *health.Loop
}

// Messages opens the consumer's iterator, beating on each Next.
func (c beatingConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	it, err := c.Consumer.Messages(opts...)
	if err != nil {
		return nil, err
	}
	return beatingIterator{MessagesContext: it, loop: c.loop}, nil
}

// beatingIterator beats its loop on each Next.
type beatingIterator struct {
	jetstream.MessagesContext
	loop *health.Loop
}

// Next beats the loop, then waits for the next message.
func (it beatingIterator) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	it.loop.Beat()
	return it.MessagesContext.Next(opts...)
}
