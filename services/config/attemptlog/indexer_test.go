package attemptlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// streamsEnv is a NATS server with EVENTS and ATTEMPTS, and helpers that
// publish records into them the way ingest and delivery do.
type streamsEnv struct {
	t  *testing.T
	js jetstream.JetStream
}

func newStreamsEnv(t *testing.T) *streamsEnv {
	t.Helper()
	n := testenv.StartNATS(t)
	js := n.JetStream(t)
	for _, ensure := range []func(context.Context, jetstream.JetStream, streams.Options) (jetstream.Stream, error){streams.EnsureEvents, streams.EnsureAttempts} {
		if _, err := ensure(context.Background(), js, streams.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	return &streamsEnv{t: t, js: js}
}

func (e *streamsEnv) publishEvent(tenant, typ string, at time.Time) (string, uint64) {
	e.t.Helper()
	id := ids.NewAt(ids.Message, at)
	ev := &eventv1.Event{MessageId: id, TenantId: tenant, EventType: typ, Timestamp: timestamppb.New(at), AcceptedAt: timestamppb.New(at),
		Payload: fmt.Appendf(nil, `{"type":%q,"timestamp":%q,"data":{"job_id":"j"}}`, typ, at.Format(time.RFC3339))}
	data, err := proto.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	ack, err := e.js.Publish(context.Background(), streams.EventSubject(tenant, typ), data, jetstream.WithMsgID(id))
	if err != nil {
		e.t.Fatal(err)
	}
	return id, ack.Sequence
}

func (e *streamsEnv) publishAttempt(a *eventv1.Attempt) uint64 {
	e.t.Helper()
	data, err := proto.Marshal(a)
	if err != nil {
		e.t.Fatal(err)
	}
	ack, err := e.js.Publish(context.Background(), streams.AttemptSubject(a.TenantId, a.EndpointId), data, jetstream.WithMsgID(a.Id))
	if err != nil {
		e.t.Fatal(err)
	}
	return ack.Sequence
}

// runIndexer runs an indexer until the returned stop is called (or the test
// ends).
func runIndexer(t *testing.T, s *Store, js jetstream.JetStream) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ix := NewIndexer(s, js, nil)
	go func() { done <- ix.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("indexer Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("indexer did not stop within 10s")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitPositions waits until the store has indexed both streams up to the
// given sequences.
func waitPositions(t *testing.T, s *Store, events, attempts uint64) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() error {
		e, err := s.Position(streams.Events)
		if err != nil {
			return err
		}
		a, err := s.Position(streams.Attempts)
		if err != nil {
			return err
		}
		if e < events || a < attempts {
			return fmt.Errorf("indexed EVENTS to %d and ATTEMPTS to %d, want %d and %d", e, a, events, attempts)
		}
		return nil
	})
}

// snapshot is what the queries say about an endpoint and a message.
type snapshot struct {
	messages, attempts, failures int
	delivery                     Delivery
	success, failure             uint64
}

func takeSnapshot(t *testing.T, s *Store, tenant, ep, msg string) snapshot {
	t.Helper()
	ctx := context.Background()
	var sn snapshot
	sn.messages = len(all(t, 3, func(q Query) (Page[Message], error) { return s.Messages(ctx, tenant, MessageQuery{Query: q}) }))
	sn.attempts = len(all(t, 3, func(q Query) (Page[AttemptSummary], error) {
		return s.EndpointAttempts(ctx, tenant, ep, AttemptQuery{Query: q})
	}))
	sn.failures = len(all(t, 3, func(q Query) (Page[AttemptSummary], error) {
		return s.EndpointAttempts(ctx, tenant, ep, AttemptQuery{Query: q, Outcome: eventv1.Outcome_OUTCOME_HTTP_STATUS})
	}))
	d, err := s.Delivery(ctx, tenant, msg, ep)
	if err != nil {
		t.Fatalf("delivery of %s to %s: %v", msg, ep, err)
	}
	sn.delivery = d
	st, err := s.EndpointStats(ctx, tenant, ep, 24)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st {
		sn.success += h.Success
		sn.failure += h.Failure
	}
	return sn
}

// TestIndexerBuildsResumesAndRebuilds: the indexer builds the store from
// the streams; after a restart it resumes from its stored positions without
// counting anything twice; a wiped store is rebuilt from the streams.
func TestIndexerBuildsResumesAndRebuilds(t *testing.T) {
	e := newStreamsEnv(t)
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// The store may not outlive the indexer: close after it stops.
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now().UTC()
	ep := ids.NewAt(ids.Endpoint, now.Add(-time.Hour))

	// Records stored before the indexer starts.
	m1, _ := e.publishEvent("acme", "job.completed", now.Add(-10*time.Minute))
	m2, _ := e.publishEvent("acme", "job.failed", now.Add(-5*time.Minute))
	e.publishEvent("globex", "job.completed", now.Add(-5*time.Minute))
	e.publishAttempt(newAttempt("acme", ep, m1, 1, now.Add(-10*time.Minute), eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_RETRYING))
	e.publishAttempt(newAttempt("acme", ep, m2, 1, now.Add(-5*time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED))
	stop := runIndexer(t, s, e.js)
	waitPositions(t, s, 3, 2)
	got := takeSnapshot(t, s, "acme", ep, m1)
	if got.messages != 2 || got.attempts != 2 || got.failures != 1 || got.delivery.State != eventv1.DeliveryState_DELIVERY_STATE_RETRYING || got.delivery.Attempts != 1 || got.success != 1 || got.failure != 1 {
		t.Errorf("after the first run: %+v", got)
	}

	// Records stored while it runs.
	retry := newAttempt("acme", ep, m1, 2, now.Add(-9*time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
	seq := e.publishAttempt(retry)
	waitPositions(t, s, 3, 3)
	if d, _ := s.Delivery(context.Background(), "acme", m1, ep); d.State != eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED || d.Attempts != 2 {
		t.Errorf("delivery after its retry = %+v, want succeeded after 2 attempts", d)
	}
	stream, err := e.js.Stream(context.Background(), streams.Attempts)
	if err != nil {
		t.Fatal(err)
	}
	if gotSeq, err := s.AttemptSequence(context.Background(), "acme", retry.Id); err != nil || gotSeq != seq {
		t.Errorf("AttemptSequence = %d, %v; want %d", gotSeq, err, seq)
	}
	a, err := LoadAttempt(context.Background(), stream, seq, "acme", retry.Id)
	if err != nil || !proto.Equal(a, retry) {
		t.Errorf("LoadAttempt = %v, %v; want the attempt published", a, err)
	}
	if _, err := LoadAttempt(context.Background(), stream, seq, "globex", retry.Id); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadAttempt for another tenant = %v, want ErrNotFound", err)
	}
	want := takeSnapshot(t, s, "acme", ep, m1)

	// Stopped, more records, started again: it resumes where it stopped.
	stop()
	m3, _ := e.publishEvent("acme", "job.created", now.Add(-time.Minute))
	e.publishAttempt(newAttempt("acme", ep, m3, 1, now.Add(-time.Minute), eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	stop = runIndexer(t, s, e.js)
	waitPositions(t, s, 4, 4)
	want.messages, want.attempts, want.failures, want.failure = 3, 4, 2, 2
	if got := takeSnapshot(t, s, "acme", ep, m1); got != want {
		t.Errorf("after a restart:\n got %+v\nwant %+v (nothing counted twice)", got, want)
	}
	failed, _, err := s.FailedDeliveries(context.Background(), "acme", ep, now.Add(-time.Hour), time.Now(), 10)
	if err != nil || len(failed) != 1 || failed[0].MessageID != m3 {
		t.Errorf("failed deliveries = %+v, %v; want %s", failed, err, m3)
	}

	// Wiped: rebuilt from the streams.
	stop()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	runIndexer(t, s, e.js)
	waitPositions(t, s, 4, 4)
	if got := takeSnapshot(t, s, "acme", ep, m1); got != want {
		t.Errorf("after a rebuild:\n got %+v\nwant %+v", got, want)
	}
}

// TestIndexerWaitsForTheStreams: started before the streams exist, the
// indexer picks them up once they are created.
func TestIndexerWaitsForTheStreams(t *testing.T) {
	n := testenv.StartNATS(t)
	js := n.JetStream(t)
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	runIndexer(t, s, js)
	time.Sleep(50 * time.Millisecond) // let it find no stream
	e := &streamsEnv{t: t, js: js}
	for _, ensure := range []func(context.Context, jetstream.JetStream, streams.Options) (jetstream.Stream, error){streams.EnsureEvents, streams.EnsureAttempts} {
		if _, err := ensure(context.Background(), js, streams.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := e.publishEvent("acme", "job.completed", time.Now())
	waitPositions(t, s, 1, 0)
	if _, err := s.Message(context.Background(), "acme", m); err != nil {
		t.Errorf("message: %v", err)
	}
}

// TestIndexerNoticesARecreatedStream: a stream deleted and created again
// (sequences start over) is read from its start, even once it has grown
// past the stored position.
func TestIndexerNoticesARecreatedStream(t *testing.T) {
	e := newStreamsEnv(t)
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now().UTC()
	ep := ids.NewAt(ids.Endpoint, now.Add(-time.Hour))
	m, _ := e.publishEvent("acme", "job.completed", now.Add(-time.Minute))
	for i := range 2 {
		e.publishAttempt(newAttempt("acme", ep, m, uint32(i+1), now.Add(-time.Duration(50-i)*time.Second), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING))
	}
	stop := runIndexer(t, s, e.js)
	waitPositions(t, s, 1, 2)
	stop()

	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, streams.Attempts); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.EnsureAttempts(ctx, e.js, streams.Options{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.publishAttempt(newAttempt("acme", ep, m, uint32(i+3), now.Add(-time.Duration(40-i)*time.Second), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING))
	}
	runIndexer(t, s, e.js)
	testenv.WaitFor(t, 10*time.Second, func() error {
		d, err := s.Delivery(ctx, "acme", m, ep)
		if err != nil {
			return err
		}
		if d.Attempts != 5 {
			return fmt.Errorf("delivery has %d attempts, want 5 (2 from the old stream, 3 from the new)", d.Attempts)
		}
		return nil
	})
}
