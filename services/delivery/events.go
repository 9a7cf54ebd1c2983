package delivery

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// errEventGone means the event of a scheduled delivery is no longer in
// EVENTS (its retention ended, or it was removed by hand).
var errEventGone = errors.New("event no longer in the EVENTS stream")

// eventSource reads events back from the EVENTS stream by sequence (direct
// get, answered by any replica), for deliveries returning from the schedule.
type eventSource struct {
	stream jetstream.Stream
}

// bindEvents binds the EVENTS stream, creating it when it does not exist
// yet (never changing an existing one: ingest owns its settings).
func bindEvents(ctx context.Context, js jetstream.JetStream, o streams.Options) (eventSource, error) {
	s, err := js.Stream(ctx, streams.Events)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = streams.EnsureEvents(ctx, js, o)
	}
	if err != nil {
		return eventSource{}, fmt.Errorf("bind stream %s: %w", streams.Events, err)
	}
	return eventSource{stream: s}, nil
}

// get returns the event stored at seq and the headers it was stored with.
func (e eventSource) get(ctx context.Context, seq uint64) (*eventv1.Event, nats.Header, error) {
	raw, err := e.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil, fmt.Errorf("event %d: %w", seq, errEventGone)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get event %d: %w", seq, err)
	}
	ev := &eventv1.Event{}
	if err := proto.Unmarshal(raw.Data, ev); err != nil || ev.GetMessageId() == "" {
		return nil, nil, fmt.Errorf("event %d does not decode (%v): %w", seq, err, errEventGone)
	}
	return ev, raw.Header, nil
}
