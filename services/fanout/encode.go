package fanout

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// endpointIDField is the field number of eventv1.Delivery.endpoint_id.
const endpointIDField protowire.Number = 3

// deliveryEncoder encodes the deliveries of one event without marshalling
// the payload once per endpoint: the fields shared by every delivery are
// marshalled once, and each delivery is that encoding with its endpoint_id
// field appended. Protobuf decoders accept fields in any order, so the result
// decodes to the same eventv1.Delivery as proto.Marshal would produce.
type deliveryEncoder struct {
	delivery eventv1.Delivery
	base     []byte
}

// reset marshals the shared fields of the deliveries of ev.
func (e *deliveryEncoder) reset(ev *eventv1.Event, eventSequence uint64) error {
	e.delivery = eventv1.Delivery{
		MessageId:     ev.GetMessageId(),
		TenantId:      ev.GetTenantId(),
		EventType:     ev.GetEventType(),
		Payload:       ev.GetPayload(),
		EventSequence: eventSequence,
		AcceptedAt:    ev.GetAcceptedAt(),
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(e.base[:0], &e.delivery)
	if err != nil {
		return fmt.Errorf("marshal delivery of %s: %w", ev.GetMessageId(), err)
	}
	e.base = b
	return nil
}

// size is the encoded size of a delivery to an endpoint id of n bytes.
func (e *deliveryEncoder) size(n int) int {
	return len(e.base) + protowire.SizeTag(endpointIDField) + protowire.SizeBytes(n)
}

// encode returns the delivery to endpointID in a new buffer, which the caller
// owns (publishes keep it until their ack).
func (e *deliveryEncoder) encode(endpointID string) []byte {
	b := make([]byte, 0, e.size(len(endpointID)))
	b = append(b, e.base...)
	b = protowire.AppendTag(b, endpointIDField, protowire.BytesType)
	return protowire.AppendString(b, endpointID)
}
