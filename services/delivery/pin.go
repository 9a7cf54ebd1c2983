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
