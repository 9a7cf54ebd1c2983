package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// testPartitions keeps the DELIVERIES stream small in tests.
const testPartitions = 4

// settleTimeout bounds the waits for events to be fanned out.
const settleTimeout = 15 * time.Second

// harness is a real nats-server and a fake config service for fanout tests.
type harness struct {
	t      testing.TB
	nats   *testenv.NATS
	js     jetstream.JetStream
	config *fakeConfig
	client configv1.ConfigServiceClient
}

// newHarness starts nats-server and the fake config service; held holds the
// config snapshot back until h.config.release.
func newHarness(t testing.TB, held bool) *harness {
	t.Helper()
	n := testenv.StartNATS(t)
	f := newFakeConfig(held)
	return &harness{t: t, nats: n, js: n.JetStream(t), config: f, client: f.serve(t)}
}

// testConfig is a Config with short delays for tests.
func testConfig() Config {
	return Config{
		Streams:         streams.Options{Partitions: testPartitions},
		Concurrency:     8,
		RetryDelay:      50 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
	}
}

// newService creates a Service on its own NATS connection.
func (h *harness) newService(cfg Config, tp trace.TracerProvider) *Service {
	h.t.Helper()
	svc, err := New(context.Background(), cfg, Deps{
		NATS:           h.nats.Conn(h.t),
		Config:         h.client,
		Logger:         slog.New(slog.NewTextHandler(h.t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
		TracerProvider: tp,
	})
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	return svc
}

// run runs svc until the test ends (or until the returned stop is called) and
// checks that Run returns nil.
func (h *harness) run(svc *Service) (stop func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(20 * time.Second):
			h.t.Errorf("Run did not return 20s after its context ended")
		}
	}
	h.t.Cleanup(stop)
	return stop
}

// start creates svc, runs it until the test ends and waits until it is ready.
func (h *harness) start(cfg Config, tp trace.TracerProvider) *Service {
	h.t.Helper()
	svc := h.newService(cfg, tp)
	h.run(svc)
	h.waitReady(svc)
	return svc
}

// waitReady waits until svc reports ready.
func (h *harness) waitReady(svc *Service) {
	h.t.Helper()
	testenv.WaitFor(h.t, settleTimeout, func() error {
		if !svc.Ready() {
			return errors.New("service not ready")
		}
		return nil
	})
}

// waitWatching waits until a service opened a Watch stream.
func (h *harness) waitWatching() {
	h.t.Helper()
	select {
	case <-h.config.watching:
	case <-time.After(settleTimeout):
		h.t.Fatal("no service opened a Watch stream")
	}
}

// publishEvent stores ev in EVENTS as ingest does and returns its sequence.
func (h *harness) publishEvent(ev *eventv1.Event, header nats.Header) uint64 {
	h.t.Helper()
	data, err := proto.Marshal(ev)
	if err != nil {
		h.t.Fatalf("marshal event: %v", err)
	}
	return h.publishRaw(streams.EventSubject(ev.GetTenantId(), ev.GetEventType()), ev.GetMessageId(), data, header)
}

// publishRaw stores data in EVENTS under a Nats-Msg-Id and returns its sequence.
func (h *harness) publishRaw(subject, msgID string, data []byte, header nats.Header) uint64 {
	h.t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	for k, v := range header {
		msg.Header[k] = v
	}
	ack, err := h.js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(msgID))
	if err != nil {
		h.t.Fatalf("publish event to %s: %v", subject, err)
	}
	return ack.Sequence
}

// waitSettled waits until every event in EVENTS up to seq has been handed
// out and acked (or terminated).
func (h *harness) waitSettled(seq uint64) *jetstream.ConsumerInfo {
	h.t.Helper()
	var info *jetstream.ConsumerInfo
	testenv.WaitFor(h.t, settleTimeout, func() error {
		var err error
		info, err = h.consumerInfo()
		if err != nil {
			return err
		}
		if info.AckFloor.Stream < seq || info.NumAckPending > 0 {
			return fmt.Errorf("ack floor at stream sequence %d with %d pending acks, want %d and 0", info.AckFloor.Stream, info.NumAckPending, seq)
		}
		return nil
	})
	return info
}

// checkNoRedelivery fails the test if the consumer handed an event out more
// than once: every redelivery takes a consumer sequence but no stream one.
func (h *harness) checkNoRedelivery(info *jetstream.ConsumerInfo) {
	h.t.Helper()
	if info.Delivered.Consumer != info.Delivered.Stream {
		h.t.Errorf("consumer made %d deliveries of %d events, want one each", info.Delivered.Consumer, info.Delivered.Stream)
	}
}

func (h *harness) consumerInfo() (*jetstream.ConsumerInfo, error) {
	c, err := h.js.Consumer(context.Background(), streams.Events, streams.FanoutConsumer)
	if err != nil {
		return nil, fmt.Errorf("look up consumer: %w", err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		return nil, fmt.Errorf("consumer info: %w", err)
	}
	return info, nil
}

// storedDelivery is one message of the DELIVERIES stream.
type storedDelivery struct {
	subject  string
	msgID    string
	header   nats.Header
	delivery *eventv1.Delivery
}

// deliveries returns every message in DELIVERIES by Nats-Msg-Id, failing
// the test if a Nats-Msg-Id was stored twice.
func (h *harness) deliveries() map[string]storedDelivery {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, streams.Deliveries)
	if err != nil {
		h.t.Fatalf("look up stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	got := map[string]storedDelivery{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatalf("get delivery %d: %v", seq, err)
		}
		d := &eventv1.Delivery{}
		if err := proto.Unmarshal(raw.Data, d); err != nil {
			h.t.Fatalf("decode delivery %d: %v", seq, err)
		}
		id := raw.Header.Get(jetstream.MsgIDHeader)
		if _, dup := got[id]; dup {
			h.t.Errorf("delivery %s stored twice", id)
		}
		got[id] = storedDelivery{subject: raw.Subject, msgID: id, header: raw.Header, delivery: d}
	}
	return got
}

// deliveriesOf returns the stored deliveries of one message by endpoint id.
func (h *harness) deliveriesOf(messageID string) map[string]storedDelivery {
	h.t.Helper()
	got := map[string]storedDelivery{}
	for _, d := range h.deliveries() {
		if d.delivery.GetMessageId() == messageID {
			got[d.delivery.GetEndpointId()] = d
		}
	}
	return got
}

func newTenant() *configv1.Tenant {
	return &configv1.Tenant{Id: ids.New(ids.Tenant), Name: "Acme"}
}

// newEndpoint returns an enabled endpoint of tenant with the given filter.
func newEndpoint(tenantID string, eventTypes ...string) *configv1.Endpoint {
	return &configv1.Endpoint{
		Id:         ids.New(ids.Endpoint),
		TenantId:   tenantID,
		Url:        "https://example.com/hooks",
		EventTypes: eventTypes,
		Enabled:    true,
	}
}

// newEvent returns an event as ingest stores it.
func newEvent(tenantID, eventType string) *eventv1.Event {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &eventv1.Event{
		MessageId:  ids.New(ids.Message),
		TenantId:   tenantID,
		EventType:  eventType,
		Timestamp:  timestamppb.New(now),
		Payload:    fmt.Appendf(nil, `{"type":%q,"timestamp":%q,"data":{"job_id":"job_1","status":"done"}}`, eventType, now.Format(time.RFC3339Nano)),
		AcceptedAt: timestamppb.New(now),
	}
}
