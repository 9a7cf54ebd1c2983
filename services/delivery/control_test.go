package delivery

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/deliverycontrol"
	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// storeEvent stores an event of a new message to ep in EVENTS the way
// ingest does and returns its message id and sequence.
func (e *env) storeEvent(t *testing.T, ep *configv1.Endpoint) (string, uint64) {
	t.Helper()
	msgID := ids.New(ids.Message)
	ev, err := proto.Marshal(&eventv1.Event{MessageId: msgID, TenantId: ep.GetTenantId(), EventType: "job.completed",
		Payload: fmt.Appendf(nil, `{"type":"job.completed","data":{"job_id":%q}}`, msgID), AcceptedAt: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := e.js.PublishMsg(context.Background(), &nats.Msg{Subject: streams.EventSubject(ep.GetTenantId(), "job.completed"), Data: ev}, jetstream.WithMsgID(msgID))
	if err != nil {
		t.Fatal(err)
	}
	return msgID, ack.Sequence
}

// TestRetryNowSendsAnEndpointsWaitingDeliveriesNow: n retries of endpoint A
// and m of endpoint B wait in the schedule of their (shared) partition, due
// in hours; k more of A's are due now, so the scheduler claims them while
// the request runs. Retry now of A answers the exact count it made due, A
// gets each of its deliveries once within seconds with one attempt
// record each, B's m stay in the schedule at their times, A is no longer
// failing (the Redis failure run and both workers' memory of it are gone:
// a new delivery is sent at once, not put off for hours), and bad
// requests are refused.
func TestRetryNowSendsAnEndpointsWaitingDeliveriesNow(t *testing.T) {
	e := newEnv(t)
	sinkA, sinkB := newSink(t), newSink(t)
	a, b := newEndpoint(t, sinkA.srv.URL), newEndpoint(t, sinkB.srv.URL)
	e.config.put(a)
	e.config.put(b)
	cfg := testConfig()
	cfg.Schedule = []time.Duration{0, 3 * time.Hour, 3 * time.Hour}
	w1 := e.startWorker(t, cfg, workerOptions{})
	w2 := e.startWorker(t, cfg, workerOptions{})

	const n, m, k = 40, 15, 12
	rdb := e.redis.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// A is failing with nothing waiting: both workers remember a retry
	// pending in an hour (whichever holds the partition would put a new
	// delivery off to it). Retry now makes nothing due and tells both —
	// not only the one that answers — that A is no longer failing.
	for _, w := range []*worker{w1, w2} {
		w.svc.states.failed(a.GetId(), time.Now(), time.Now().Add(time.Hour))
	}
	if queued, err := deliverycontrol.RetryNow(ctx, e.nats.Conn(t), testTenant, a.GetId()); err != nil || queued != 0 {
		t.Fatalf("RetryNow with nothing waiting = %d, %v; want 0", queued, err)
	}
	for i, w := range []*worker{w1, w2} {
		testenv.WaitFor(t, waitTimeout, func() error {
			if until, failing := w.svc.states.failingUntil(a.GetId(), time.Now()); failing {
				return fmt.Errorf("worker %d still takes A as failing until %v", i+1, until)
			}
			return nil
		})
	}

	q, err := retryq.New(rdb, retryq.Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
	var entries []retryq.Entry
	var idsA []string
	for i := range n {
		id, seq := e.storeEvent(t, a)
		idsA = append(idsA, id)
		entries = append(entries, retryq.Entry{Item: retryq.Item{Seq: seq, Endpoint: a.GetId(), Attempt: 1, Hops: 1}, Due: later.Add(time.Duration(i) * time.Second)})
	}
	var entriesB []retryq.Entry
	for range m {
		_, seq := e.storeEvent(t, b)
		entriesB = append(entriesB, retryq.Entry{Item: retryq.Item{Seq: seq, Endpoint: b.GetId(), Attempt: 1, Hops: 1}, Due: later})
	}
	if err := q.ScheduleMany(context.Background(), append(entries, entriesB...)); err != nil {
		t.Fatal(err)
	}
	// A is failing: a run of failures in Redis, and both workers remember
	// a retry pending in hours (whichever holds the partition would put a
	// new delivery off to it).
	if err := rdb.Set(context.Background(), failingKey(a.GetId()), time.Now().Add(-time.Hour).UnixMilli(), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*worker{w1, w2} {
		w.svc.states.failed(a.GetId(), time.Now(), later)
	}

	queued, err := deliverycontrol.RetryNow(ctx, e.nats.Conn(t), testTenant, a.GetId())
	if err != nil {
		t.Fatalf("RetryNow: %v", err)
	}
	if queued != n {
		t.Errorf("queued = %d, want %d", queued, n)
	}
	start := time.Now()
	sinkA.waitSucceeded(t, idsA)
	t.Logf("%d waiting deliveries sent %v after retry now", n, time.Since(start))

	// Again, with k of A's due now, which the schedulers claim while the
	// request runs, and j more due in hours.
	const j = 10
	var more []retryq.Entry
	for i := range k + j {
		id, seq := e.storeEvent(t, a)
		idsA = append(idsA, id)
		due := time.Now()
		if i >= k {
			due = later
		}
		more = append(more, retryq.Entry{Item: retryq.Item{Seq: seq, Endpoint: a.GetId(), Attempt: 1, Hops: 1}, Due: due})
	}
	if err := q.ScheduleMany(context.Background(), more); err != nil {
		t.Fatal(err)
	}
	queued, err = deliverycontrol.RetryNow(ctx, e.nats.Conn(t), testTenant, a.GetId())
	if err != nil {
		t.Fatalf("RetryNow: %v", err)
	}
	// The k due ones are counted if no scheduler held them yet.
	if queued < j || queued > j+k {
		t.Errorf("queued = %d, want the %d made due and those of the %d due already no scheduler held", queued, j, k)
	}
	sinkA.waitSucceeded(t, idsA)
	testenv.WaitFor(t, waitTimeout, func() error {
		if got := e.scheduleLen(t, 1); got != m {
			return fmt.Errorf("schedule holds %d items, want B's %d", got, m)
		}
		return nil
	})
	e.waitDeliveriesEmpty(t)
	if got, ok := sinkA.counts(); got != n+k+j || ok != n+k+j {
		t.Errorf("A got %d requests (%d answered 2xx), want %d once each", got, ok, n+k+j)
	}
	if d := sinkA.duplicates(); d != 0 {
		t.Errorf("A got %d duplicates, want 0", d)
	}
	if got, _ := sinkB.counts(); got != 0 {
		t.Errorf("B got %d requests, want 0: its retries are not due", got)
	}
	for _, en := range entriesB {
		mem, _ := retryq.Encode(en.Item)
		s, err := rdb.ZScore(context.Background(), q.Key(0), mem).Result()
		if err != nil || int64(s) != en.Due.UnixMilli() {
			t.Errorf("B's item %d scored %v, %v; want %d (untouched)", en.Item.Seq, s, err, en.Due.UnixMilli())
		}
	}
	attempts := e.allAttempts(t)
	if len(attempts) != n+k+j {
		t.Errorf("%d attempt records, want %d", len(attempts), n+k+j)
	}
	for _, at := range attempts {
		if at.GetEndpointId() != a.GetId() || at.GetState() != eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED || at.GetAttempt() != 2 {
			t.Errorf("attempt of %s #%d %v, want A's attempt #2 succeeded", at.GetEndpointId(), at.GetAttempt(), at.GetState())
		}
	}
	if got := rdb.Exists(context.Background(), failingKey(a.GetId())).Val(); got != 0 {
		t.Errorf("A's failure run still in Redis after retry now")
	}
	for i, w := range []*worker{w1, w2} {
		testenv.WaitFor(t, waitTimeout, func() error {
			if until, failing := w.svc.states.failingUntil(a.GetId(), time.Now()); failing {
				return fmt.Errorf("worker %d still takes A as failing until %v", i+1, until)
			}
			return nil
		})
	}
	// A new delivery to A is sent now, not put off to the old back-off.
	d := newDelivery(a)
	e.publish(context.Background(), t, d)
	sinkA.waitSucceeded(t, []string{d.GetMessageId()})

	// Another tenant's endpoint, an unknown one, a disabled one, and
	// nothing at all are refused, each with its code.
	other := newEndpoint(t, sinkB.srv.URL)
	other.TenantId = "ten_other"
	off := newEndpoint(t, sinkB.srv.URL)
	off.Enabled = false
	e.config.put(other)
	e.config.put(off)
	testenv.WaitFor(t, waitTimeout, func() error {
		for _, w := range []*worker{w1, w2} {
			if _, ok := w.svc.view.Endpoint(off.GetId()); !ok {
				return errors.New("workers have not seen the new endpoints yet")
			}
		}
		return nil
	})
	for _, c := range []struct {
		tenant, endpoint, code string
	}{
		{testTenant, other.GetId(), deliverycontrol.CodeNotFound},
		{testTenant, ids.New(ids.Endpoint), deliverycontrol.CodeNotFound},
		{testTenant, off.GetId(), deliverycontrol.CodeDisabled},
		{"", a.GetId(), deliverycontrol.CodeInvalid},
	} {
		_, err := deliverycontrol.RetryNow(ctx, e.nats.Conn(t), c.tenant, c.endpoint)
		var ce *deliverycontrol.Error
		if !errors.As(err, &ce) || ce.Code != c.code || ce.Message == "" {
			t.Errorf("RetryNow(%q, %q) = %v, want a %q error with a message", c.tenant, c.endpoint, err, c.code)
		}
	}
	if got := e.scheduleLen(t, 1); got != m {
		t.Errorf("schedule holds %d items after the refused requests, want %d", got, m)
	}

	// With no worker running nobody answers.
	w1.stop(t)
	w2.stop(t)
	if _, err := deliverycontrol.RetryNow(ctx, e.nats.Conn(t), testTenant, a.GetId()); !errors.Is(err, deliverycontrol.ErrNoWorker) {
		t.Errorf("RetryNow with no worker = %v, want ErrNoWorker", err)
	}
}
