package fanout

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

func TestEndpointIDFieldMatchesTheProto(t *testing.T) {
	fd := (&eventv1.Delivery{}).ProtoReflect().Descriptor().Fields().ByName("endpoint_id")
	if fd == nil {
		t.Fatal("eventv1.Delivery has no endpoint_id field")
	}
	if fd.Number() != endpointIDField {
		t.Errorf("endpoint_id field number = %d, want %d", fd.Number(), endpointIDField)
	}
}

func TestDeliveryEncoderDecodesLikeMarshal(t *testing.T) {
	tests := []struct {
		name     string
		event    *eventv1.Event
		sequence uint64
		endpoint string
	}{
		{
			name:     "full event",
			event:    newEvent("ten_1", "job.completed"),
			sequence: 42,
			endpoint: "ep_01M8CTJQBFPDJP1ASACVTTZR29",
		},
		{
			name:     "no payload, no accepted_at",
			event:    &eventv1.Event{MessageId: "msg_2", TenantId: "ten_2", EventType: "job.failed"},
			sequence: 1,
			endpoint: "ep_2",
		},
		{
			name: "large sequence and payload",
			event: &eventv1.Event{
				MessageId: "msg_3", TenantId: "ten_3", EventType: "job.created",
				Payload: make([]byte, 300_000), AcceptedAt: timestamppb.Now(),
			},
			sequence: 1 << 62,
			endpoint: "ep_3",
		},
	}
	var enc deliveryEncoder // reused, as a worker reuses it
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := enc.reset(tt.event, tt.sequence); err != nil {
				t.Fatalf("reset: %v", err)
			}
			b := enc.encode(tt.endpoint)
			if got, want := len(b), enc.size(len(tt.endpoint)); got != want {
				t.Errorf("len(encode) = %d, want size() %d", got, want)
			}
			got := &eventv1.Delivery{}
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := &eventv1.Delivery{
				MessageId:     tt.event.GetMessageId(),
				TenantId:      tt.event.GetTenantId(),
				EndpointId:    tt.endpoint,
				EventType:     tt.event.GetEventType(),
				Payload:       tt.event.GetPayload(),
				EventSequence: tt.sequence,
				AcceptedAt:    tt.event.GetAcceptedAt(),
			}
			if !proto.Equal(got, want) {
				t.Errorf("decoded %v, want %v", got, want)
			}
		})
	}
}
