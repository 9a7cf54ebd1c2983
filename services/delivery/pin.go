package delivery

import (
	"context"
	"fmt"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// releasePin gives up this worker's pin on the partition, so that another
// worker takes it over now rather than after the pinned TTL. It does nothing
// when the pin has moved to another worker.
func (p *partition) releasePin(ctx context.Context) error {
	pin, _ := p.pinID.Load().(string)
	if pin == "" {
		return nil
	}
	info, err := p.consumer.Info(ctx)
	if err != nil {
		return fmt.Errorf("consumer info of %s: %w", streams.PartitionConsumer(p.index), err)
	}
	for _, g := range info.PriorityGroups {
		if g.Group == streams.DeliveryGroup && g.PinnedClientID == pin {
			if err := p.stream.UnpinConsumer(ctx, streams.PartitionConsumer(p.index), streams.DeliveryGroup); err != nil {
				return fmt.Errorf("unpin %s: %w", streams.PartitionConsumer(p.index), err)
			}
		}
	}
	return nil
}

// takeOverPin unpins the partition if a client is pinned: called when this
// worker has just acquired the partition's lease and not pulled yet, the
// pin can only be a previous holder's that did not give it up (killed, or
// cut off), and would otherwise keep this worker waiting for the pinned TTL.
func (p *partition) takeOverPin(ctx context.Context) error {
	info, err := p.consumer.Info(ctx)
	if err != nil {
		return fmt.Errorf("consumer info of %s: %w", streams.PartitionConsumer(p.index), err)
	}
	for _, g := range info.PriorityGroups {
		if g.Group == streams.DeliveryGroup && g.PinnedClientID != "" {
			if err := p.stream.UnpinConsumer(ctx, streams.PartitionConsumer(p.index), streams.DeliveryGroup); err != nil {
				return fmt.Errorf("unpin %s: %w", streams.PartitionConsumer(p.index), err)
			}
			p.log.InfoContext(ctx, "took the partition over from a pin its previous holder left")
		}
	}
	return nil
}
