package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/redistrace"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// waitTimeout bounds every wait of the integration tests.
const waitTimeout = 15 * time.Second

// testTenant owns every endpoint of the tests.
const testTenant = "ten_test"

// loopback lets the tests reach their httptest receivers.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// env is one test's world: real NATS and Redis, the fake config service.
type env struct {
	nats   *testenv.NATS
	redis  *testenv.Redis
	js     jetstream.JetStream
	config *fakeConfig
	client configv1.ConfigServiceClient
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		nats:   testenv.StartNATS(t),
		redis:  testenv.StartRedis(t),
		config: &fakeConfig{endpoints: map[string]*configv1.Endpoint{}, watchers: map[chan *configv1.Change]struct{}{}},
	}
	e.js = e.nats.JetStream(t)
	if _, err := streams.EnsureEvents(context.Background(), e.js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	configv1.RegisterConfigServiceServer(srv, e.config)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.client = configv1.NewConfigServiceClient(conn)
	return e
}

// testSchedule is a compressed retry schedule: 6 attempts within a second.
var testSchedule = []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond, 320 * time.Millisecond}

// testConfig is the worker configuration of most tests: one partition,
// loopback allowed, a compressed schedule and a quick scheduler.
func testConfig() Config {
	return Config{
		Streams:       streams.Options{Partitions: 1},
		AllowNetworks: loopback,
		RetryDelay:    50 * time.Millisecond,
		Schedule:      testSchedule,
		PollInterval:  10 * time.Millisecond,
		DeferDelay:    20 * time.Millisecond,
		ClaimLease:    5 * time.Second,
	}
}

// worker is a running Service.
type worker struct {
	svc    *Service
	nc     *nats.Conn
	rdb    redis.UniversalClient
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
}

// workerOptions are the less common knobs of startWorker.
type workerOptions struct {
	tracer trace.TracerProvider
	live   *health.Liveness
	meter  metric.MeterProvider
	// logs, if set, also gets the worker's log, as JSON lines.
	logs io.Writer
	// redis is the worker's Redis client (default: one for e.redis).
	redis redis.UniversalClient
}

// startWorker runs a Service on its own NATS connection until the test ends
// (or stop), and waits until it is ready.
func (e *env) startWorker(t *testing.T, cfg Config, opts workerOptions) *worker {
	t.Helper()
	nc, err := nats.Connect(e.nats.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	rdb := opts.redis
	if rdb == nil {
		rdb = e.redis.Client(t)
	}
	if opts.tracer == nil {
		opts.tracer = noop.NewTracerProvider()
	} else if err := redistrace.Instrument(rdb, opts.tracer); err != nil {
		t.Fatal(err)
	}
	var handler slog.Handler = slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})
	if opts.logs != nil {
		handler = teeHandler{handler, slog.NewJSONHandler(opts.logs, &slog.HandlerOptions{Level: slog.LevelInfo})}
	}
	log := slog.New(handler)
	svc, err := New(context.Background(), cfg, Deps{NATS: nc, Redis: rdb, Config: e.client, Logger: log, TracerProvider: opts.tracer, Liveness: opts.live, MeterProvider: opts.meter})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{svc: svc, nc: nc, rdb: rdb, cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- svc.Run(ctx) }()
	t.Cleanup(func() { w.stop(t) })
	testenv.WaitFor(t, waitTimeout, func() error {
		if !svc.Ready() {
			return errors.New("worker not ready")
		}
		return nil
	})
	return w
}

// teeHandler writes each record to two handlers.
type teeHandler struct{ a, b slog.Handler }

func (h teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.a.Enabled(ctx, l) || h.b.Enabled(ctx, l)
}

func (h teeHandler) Handle(ctx context.Context, r slog.Record) error {
	return errors.Join(h.a.Handle(ctx, r.Clone()), h.b.Handle(ctx, r))
}

func (h teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{h.a.WithAttrs(as), h.b.WithAttrs(as)}
}

func (h teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{h.a.WithGroup(name), h.b.WithGroup(name)}
}

// stop cancels the worker and waits for Run to return nil. Calling it again
// does nothing.
func (w *worker) stop(t *testing.T) {
	t.Helper()
	w.stopOnce.Do(func() {
		w.cancel()
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %v of cancellation", waitTimeout)
		}
	})
}

// newEndpoint returns an enabled endpoint of the test tenant for url, with
// one secret.
func newEndpoint(t *testing.T, url string) *configv1.Endpoint {
	t.Helper()
	return &configv1.Endpoint{
		Id:       ids.New(ids.Endpoint),
		TenantId: testTenant,
		Url:      url,
		Secrets:  []*configv1.Secret{{Key: newSecret(t), CreatedAt: timestamppb.Now()}},
		Enabled:  true,
	}
}

// newDelivery returns a delivery of a new message to ep.
func newDelivery(ep *configv1.Endpoint) *eventv1.Delivery {
	msgID := ids.New(ids.Message)
	return &eventv1.Delivery{
		MessageId:  msgID,
		TenantId:   ep.GetTenantId(),
		EndpointId: ep.GetId(),
		EventType:  "job.completed",
		Payload:    []byte(fmt.Sprintf(`{"type":"job.completed","timestamp":"2026-01-02T03:04:05Z","data":{"job_id":%q}}`, msgID)),
		AcceptedAt: timestamppb.Now(),
	}
}

// publish stores d's event in EVENTS the way ingest does, then d in
// DELIVERIES the way fanout does (with the event's sequence), both with the
// trace context of ctx, for a deployment of one partition.
func (e *env) publish(ctx context.Context, t *testing.T, d *eventv1.Delivery) {
	t.Helper()
	e.publishTo(ctx, t, d, 1)
}

// publishTo is publish for a deployment of the given number of partitions.
func (e *env) publishTo(ctx context.Context, t *testing.T, d *eventv1.Delivery, partitions int) {
	t.Helper()
	if err := e.store(ctx, d, partitions); err != nil {
		t.Fatal(err)
	}
}

// store is publishTo returning its error, for goroutines other than the
// test's.
func (e *env) store(ctx context.Context, d *eventv1.Delivery, partitions int) error {
	ev, err := proto.Marshal(&eventv1.Event{MessageId: d.GetMessageId(), TenantId: d.GetTenantId(), EventType: d.GetEventType(), Payload: d.GetPayload(), AcceptedAt: d.GetAcceptedAt()})
	if err != nil {
		return err
	}
	evMsg := &nats.Msg{Subject: streams.EventSubject(d.GetTenantId(), d.GetEventType()), Data: ev, Header: nats.Header{}}
	natsx.Inject(ctx, evMsg)
	ack, err := e.js.PublishMsg(ctx, evMsg, jetstream.WithMsgID(d.GetMessageId()))
	if err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	d.EventSequence = ack.Sequence
	data, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: streams.DeliverySubject(d.GetEndpointId(), partitions), Data: data, Header: nats.Header{}}
	natsx.Inject(ctx, msg)
	if _, err := e.js.PublishMsg(ctx, msg, jetstream.WithMsgID(streams.DeliveryMsgID(d.GetMessageId(), d.GetEndpointId()))); err != nil {
		return fmt.Errorf("publish delivery: %w", err)
	}
	return nil
}

// attempts waits until ATTEMPTS holds want records and returns them in order.
func (e *env) attempts(t *testing.T, want int) []*eventv1.Attempt {
	t.Helper()
	ctx := context.Background()
	var s jetstream.Stream
	testenv.WaitFor(t, waitTimeout, func() error {
		var err error
		if s, err = e.js.Stream(ctx, streams.Attempts); err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if got := info.State.Msgs; got < uint64(want) {
			return fmt.Errorf("ATTEMPTS holds %d records, want %d", got, want)
		}
		return nil
	})
	var out []*eventv1.Attempt
	for seq := uint64(1); len(out) < want; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get attempt %d: %v", seq, err)
		}
		a := &eventv1.Attempt{}
		if err := proto.Unmarshal(raw.Data, a); err != nil {
			t.Fatalf("decode attempt %d: %v", seq, err)
		}
		if got, want := raw.Subject, streams.AttemptSubject(a.GetTenantId(), a.GetEndpointId()); got != want {
			t.Errorf("attempt %d stored on %q, want %q", seq, got, want)
		}
		if got := raw.Header.Get(jetstream.MsgIDHeader); got != a.GetId() {
			t.Errorf("attempt %d Nats-Msg-Id = %q, want its id %q", seq, got, a.GetId())
		}
		out = append(out, a)
	}
	return out
}

// attemptCount returns how many records ATTEMPTS holds.
func (e *env) attemptCount(t *testing.T) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), streams.Attempts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitDeliveriesEmpty waits until DELIVERIES holds nothing: every delivery
// was acked.
func (e *env) waitDeliveriesEmpty(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, waitTimeout, func() error {
		s, err := e.js.Stream(context.Background(), streams.Deliveries)
		if err != nil {
			return err
		}
		info, err := s.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("DELIVERIES still holds %d messages", info.State.Msgs)
		}
		return nil
	})
}

// waitClosed waits until ch is closed.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not happen within %v", what, waitTimeout)
	}
}
