package delivery

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// storedOp is an operational event read from the OPERATIONAL stream.
type storedOp struct {
	subject string
	msgID   string
	event   *eventv1.OperationalEvent
}

// readOps reads want events from OPERATIONAL with a new durable consumer
// that starts at the stream's beginning, as a subscriber that was down
// would, and checks that no more follow.
func (e *env) readOps(t *testing.T, want int) []storedOp {
	t.Helper()
	ctx := context.Background()
	c, err := e.js.CreateConsumer(ctx, streams.Operational, jetstream.ConsumerConfig{
		Durable:       "ops-reader",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []storedOp
	deadline := time.Now().Add(waitTimeout)
	for len(out) < want && time.Now().Before(deadline) {
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			ev := &eventv1.OperationalEvent{}
			if err := proto.Unmarshal(m.Data(), ev); err != nil {
				t.Fatalf("undecodable operational event on %s: %v", m.Subject(), err)
			}
			out = append(out, storedOp{subject: m.Subject(), msgID: m.Headers().Get(jetstream.MsgIDHeader), event: ev})
			if err := m.Ack(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(out) != want {
		t.Fatalf("read %d operational events from %s, want %d", len(out), streams.Operational, want)
	}
	if extra, err := c.FetchNoWait(1); err == nil {
		for m := range extra.Messages() {
			t.Errorf("unexpected operational event on %s (Nats-Msg-Id %s)", m.Subject(), m.Headers().Get(jetstream.MsgIDHeader))
		}
	}
	return out
}

// TestOperationalEventsAreDurable: operational events published while no
// one subscribes are kept in the OPERATIONAL stream, and a durable consumer
// made afterwards reads each once, with its deterministic Nats-Msg-Id.
func TestOperationalEventsAreDurable(t *testing.T) {
	e := newEnv(t)
	gone, failing := newSink(t), newSink(t)
	gone.status(http.StatusGone)
	failing.status(http.StatusInternalServerError)
	goneEP, failingEP := newEndpoint(t, gone.srv.URL), newEndpoint(t, failing.srv.URL)
	e.config.put(goneEP)
	e.config.put(failingEP)
	cfg := testConfig()
	cfg.Schedule = testSchedule[:3] // exhausted before FailingAfter (3) would publish failing
	e.startWorker(t, cfg, workerOptions{})
	d1, d2 := newDelivery(goneEP), newDelivery(failingEP)
	e.publish(context.Background(), t, d1)
	e.publish(context.Background(), t, d2)
	dropped := e.attemptsOf(t, d1.MessageId, 1)[0]
	exhausted := e.attemptsOf(t, d2.MessageId, 3)[2]
	e.waitSettled(t, 1)

	ops := e.readOps(t, 2)
	byType := map[string]storedOp{}
	for _, op := range ops {
		byType[op.event.GetType()] = op
		if want := streams.OperationalSubject(op.event.GetType()); op.subject != want {
			t.Errorf("%s stored on %s, want %s", op.event.GetType(), op.subject, want)
		}
	}
	dis, ok := byType[streams.OpEndpointDisabled]
	if !ok {
		t.Fatalf("no %s event in the stream: %v", streams.OpEndpointDisabled, ops)
	}
	// The fake config service disables at revision 1.
	if want := streams.OpEndpointDisabled + "." + goneEP.Id + ".1"; dis.msgID != want {
		t.Errorf("endpoint.disabled Nats-Msg-Id = %q, want %q", dis.msgID, want)
	}
	if dis.event.GetEndpointId() != goneEP.Id || dis.event.GetAttemptId() != dropped.Id || dis.event.GetStatusCode() != http.StatusGone {
		t.Errorf("endpoint.disabled = %v, want endpoint %s, attempt %s, status 410", dis.event, goneEP.Id, dropped.Id)
	}
	ex, ok := byType[streams.OpAttemptExhausted]
	if !ok {
		t.Fatalf("no %s event in the stream: %v", streams.OpAttemptExhausted, ops)
	}
	if want := streams.OpAttemptExhausted + "." + exhausted.Id; ex.msgID != want {
		t.Errorf("exhausted Nats-Msg-Id = %q, want %q", ex.msgID, want)
	}
	if ex.event.GetMessageId() != d2.MessageId || ex.event.GetAttempt() != 3 || ex.event.GetAttemptId() != exhausted.Id {
		t.Errorf("exhausted = %v, want attempt 3 (%s) of %s", ex.event, exhausted.Id, d2.MessageId)
	}
}

// TestOperationalEventStoredOnce: publishing the same event twice (as after
// a lost ack) stores it once, while core NATS subscribers get both
// publishes, marked with the same Nats-Msg-Id; endpoint.disabled is keyed by
// the revision that disabled the endpoint, whichever attempt reports it.
func TestOperationalEventStoredOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := streams.EnsureOperational(ctx, e.js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	core := e.nats.Conn(t)
	sub, err := core.SubscribeSync(streams.OperationalPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := core.Flush(); err != nil {
		t.Fatal(err)
	}
	ops := opEvents{js: e.js, log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	a := &eventv1.Attempt{Id: ids.New(ids.Attempt), MessageId: ids.New(ids.Message), EndpointId: ids.New(ids.Endpoint), TenantId: testTenant, Attempt: 3}
	ev := attemptEvent(streams.OpAttemptFailing, a, "3 attempts failed in a row")
	ops.publish(ctx, ev)
	ops.publish(ctx, ev)
	// Two attempts see the endpoint disabled at revision 4: one event.
	b := proto.Clone(a).(*eventv1.Attempt)
	b.Id = ids.New(ids.Attempt)
	ops.publishDisabled(ctx, attemptEvent(streams.OpEndpointDisabled, a, "410"), 4)
	ops.publishDisabled(ctx, attemptEvent(streams.OpEndpointDisabled, b, "410"), 4)

	wantIDs := []string{
		streams.OpAttemptFailing + "." + a.Id, streams.OpAttemptFailing + "." + a.Id,
		streams.OpEndpointDisabled + "." + a.EndpointId + ".4", streams.OpEndpointDisabled + "." + a.EndpointId + ".4",
	}
	for i, want := range wantIDs {
		m, err := sub.NextMsg(waitTimeout)
		if err != nil {
			t.Fatalf("core subscriber, message %d: %v", i+1, err)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != want {
			t.Errorf("core message %d Nats-Msg-Id = %q, want %q", i+1, got, want)
		}
	}
	stored := e.readOps(t, 2)
	if stored[0].msgID != wantIDs[0] || stored[1].msgID != wantIDs[2] {
		t.Errorf("stored Nats-Msg-Ids %q, %q; want %q, %q", stored[0].msgID, stored[1].msgID, wantIDs[0], wantIDs[2])
	}
}

// fakePublisher fails the first failures publishes, then acks.
type fakePublisher struct {
	mu       sync.Mutex
	failures int
	ids      []string
}

func (f *fakePublisher) PublishMsg(_ context.Context, msg *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, msg.Header.Get(jetstream.MsgIDHeader))
	if len(f.ids) <= f.failures {
		return nil, errors.New("nats: timeout")
	}
	return &jetstream.PubAck{Stream: streams.Operational, Sequence: uint64(len(f.ids))}, nil
}

// logRecords keeps the messages logged at each level.
type logRecords struct {
	mu   sync.Mutex
	msgs map[slog.Level][]string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs[r.Level] = append(l.msgs[r.Level], r.Message)
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

// TestOperationalEventPublishIsRetried: a publish that fails is tried again
// with the same Nats-Msg-Id, a bounded number of times; one that never
// succeeds is logged as an error.
func TestOperationalEventPublishIsRetried(t *testing.T) {
	for _, tc := range []struct {
		failures  int
		wantCalls int
		wantError bool
	}{
		{failures: 0, wantCalls: 1},
		{failures: 2, wantCalls: 3},
		{failures: 100, wantCalls: 4, wantError: true},
	} {
		t.Run(strconv.Itoa(tc.failures)+" failures", func(t *testing.T) {
			f := &fakePublisher{failures: tc.failures}
			logs := &logRecords{msgs: map[slog.Level][]string{}}
			ops := opEvents{js: f, log: slog.New(logs), tries: 4, backoff: time.Millisecond}
			a := &eventv1.Attempt{Id: ids.New(ids.Attempt), EndpointId: ids.New(ids.Endpoint)}
			ops.publish(context.Background(), attemptEvent(streams.OpAttemptExhausted, a, "all attempts failed"))
			if len(f.ids) != tc.wantCalls {
				t.Errorf("%d publishes, want %d", len(f.ids), tc.wantCalls)
			}
			for i, id := range f.ids {
				if want := streams.OpAttemptExhausted + "." + a.Id; id != want {
					t.Errorf("publish %d Nats-Msg-Id = %q, want %q", i+1, id, want)
				}
			}
			if got := len(logs.msgs[slog.LevelError]) > 0; got != tc.wantError {
				t.Errorf("error logged = %v (%v), want %v", got, logs.msgs[slog.LevelError], tc.wantError)
			}
			if got := len(logs.msgs[slog.LevelWarn]); got != min(tc.failures, tc.wantCalls-1) {
				t.Errorf("%d retry warnings, want %d", got, min(tc.failures, tc.wantCalls-1))
			}
		})
	}
}

// TestOperationalEventsKeptByAStreamMadeByHand: a stream an operator made
// for the operational subjects before OPERATIONAL existed does not stop the
// worker from starting, and it stores the events.
func TestOperationalEventsKeptByAStreamMadeByHand(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mine, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "MINE", Subjects: []string{streams.OperationalPrefix + ".>"}, Duplicates: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t)
	s.status(http.StatusGone)
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	d := newDelivery(ep)
	e.publish(ctx, t, d)
	e.attemptsOf(t, d.MessageId, 1)
	e.waitSettled(t, 1)
	if _, err := e.js.Stream(ctx, streams.Operational); err == nil {
		t.Errorf("stream %s exists beside the one made by hand", streams.Operational)
	}
	raw, err := mine.GetLastMsgForSubject(ctx, streams.OperationalSubject(streams.OpEndpointDisabled))
	if err != nil {
		t.Fatalf("endpoint.disabled not in the stream made by hand: %v", err)
	}
	if want := streams.OpEndpointDisabled + "." + ep.Id + ".1"; raw.Header.Get(jetstream.MsgIDHeader) != want {
		t.Errorf("Nats-Msg-Id = %q, want %q", raw.Header.Get(jetstream.MsgIDHeader), want)
	}
}
