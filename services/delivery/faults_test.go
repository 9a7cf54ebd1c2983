package delivery

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/natsx"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestEndpointDownThenBackDrainsInRetryOrder: deliveries to an endpoint that
// is down are retried on the (compressed) schedule, each attempt numbered
// once; when the endpoint is back, its backlog drains in the order the
// retries were due.
func TestEndpointDownThenBackDrainsInRetryOrder(t *testing.T) {
	e := newEnv(t)
	s := newSink(t)
	var up atomic.Bool
	s.setAnswer(func(string, int) (int, http.Header) {
		if up.Load() {
			return http.StatusOK, nil
		}
		return http.StatusServiceUnavailable, nil
	})
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.LaneConcurrency = 1 // one at a time, so arrival order is delivery order
	cfg.Schedule = append([]time.Duration{0}, slices.Repeat([]time.Duration{100 * time.Millisecond}, 60)...)
	e.startWorker(t, cfg, workerOptions{})

	const n = 12
	var ids []string
	seqOf := map[string]uint64{}
	for i := 0; i < n; i++ {
		d := newDelivery(ep)
		e.publish(context.Background(), t, d)
		ids = append(ids, d.MessageId)
		seqOf[d.MessageId] = d.EventSequence
	}
	// Down until every delivery has failed twice.
	testenv.WaitFor(t, waitTimeout, func() error {
		failures := map[string]int{}
		for _, a := range e.allAttempts(t) {
			failures[a.MessageId]++
		}
		for _, id := range ids {
			if failures[id] < 2 {
				return fmt.Errorf("message %s failed %d times", id, failures[id])
			}
		}
		return nil
	})
	up.Store(true)
	s.waitSucceeded(t, ids)
	e.waitSettled(t, 1)

	// Each delivery's attempts are numbered 1…k once; the last succeeded.
	lastDue := map[string]time.Time{}
	byMsg := map[string][]*eventv1.Attempt{}
	for _, a := range e.allAttempts(t) {
		byMsg[a.MessageId] = append(byMsg[a.MessageId], a)
		if a.State == eventv1.DeliveryState_DELIVERY_STATE_RETRYING && a.NextAttemptAt.AsTime().After(lastDue[a.MessageId]) {
			lastDue[a.MessageId] = a.NextAttemptAt.AsTime()
		}
	}
	for _, id := range ids {
		as := byMsg[id]
		for i, a := range as {
			wantState := eventv1.DeliveryState_DELIVERY_STATE_RETRYING
			if i == len(as)-1 {
				wantState = eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED
			}
			if a.Attempt != uint32(i+1) || a.State != wantState {
				t.Errorf("message %s attempt record %d = #%d %v, want #%d %v", id, i, a.Attempt, a.State, i+1, wantState)
			}
		}
	}
	// While the endpoint was failing, new deliveries were put off to its
	// earliest pending retry instead of being tried: no first attempt but
	// the first message's started before that message's retry was due.
	firstRetry := byMsg[ids[0]][0].NextAttemptAt.AsTime()
	for _, id := range ids[1:] {
		if started := byMsg[id][0].StartedAt.AsTime(); started.Before(firstRetry) {
			t.Errorf("message %s first tried at %v, before the failing endpoint's first retry at %v", id, started, firstRetry)
		}
	}
	// The schedule scores in milliseconds and breaks ties by event sequence.
	want := slices.Clone(ids)
	slices.SortStableFunc(want, func(a, b string) int {
		return cmp.Or(cmp.Compare(lastDue[a].UnixMilli(), lastDue[b].UnixMilli()), cmp.Compare(seqOf[a], seqOf[b]))
	})
	if got := s.succeeded(); !slices.Equal(got, want) {
		t.Errorf("deliveries succeeded in the order\n%v\nwant the order their last retries were due\n%v", got, want)
	}
	if d := s.duplicates(); d != 0 {
		t.Errorf("%d duplicate deliveries, want none", d)
	}
}

// TestClaimedByADeadWorker: a worker that claims due retries and dies
// without marking them done — before or after publishing them — loses
// nothing: once the lease ends a live worker claims them, and each delivery
// reaches its endpoint exactly once.
func TestClaimedByADeadWorker(t *testing.T) {
	for _, tc := range []struct {
		name string
		// published: the dead worker had returned the delivery to the
		// stream before it died.
		published bool
	}{
		{"died before publishing", false},
		{"died after publishing", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := newSink(t)
			s.setAnswer(func(_ string, n int) (int, http.Header) {
				if n == 1 {
					return http.StatusInternalServerError, nil
				}
				return http.StatusOK, nil
			})
			ep := newEndpoint(t, s.srv.URL)
			e.config.put(ep)
			cfg := testConfig()
			cfg.Schedule = []time.Duration{0, time.Second}
			cfg.Jitter = -1
			cfg.ClaimLease = 500 * time.Millisecond
			e.startWorker(t, cfg, workerOptions{})
			ctx := context.Background()
			d := newDelivery(ep)
			e.publish(ctx, t, d)
			first := e.attemptsOf(t, d.MessageId, 1)[0]
			due := first.NextAttemptAt.AsTime()

			// The dying worker claims the retry as it comes due, ahead of the
			// live one, and never calls Done.
			q, err := retryq.New(e.redis.Client(t), retryq.Options{Partitions: 1})
			if err != nil {
				t.Fatal(err)
			}
			res, err := q.Claim(ctx, 0, due.Add(time.Millisecond), 10, cfg.ClaimLease)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Items) != 1 || res.Items[0].Seq != d.EventSequence || res.Items[0].Attempt != 1 {
				t.Fatalf("claimed %+v, want the retry of %s after attempt 1", res.Items, d.MessageId)
			}
			leaseEnd := due.Add(time.Millisecond + cfg.ClaimLease)
			if tc.published {
				ev, err := e.js.Stream(ctx, streams.Events)
				if err != nil {
					t.Fatal(err)
				}
				sched := &scheduler{events: eventSource{stream: ev}}
				f := sched.fetch(ctx, res.Items)[d.EventSequence]
				msg, id, err := deliveryMsg(res.Items[0], f, 1)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
					t.Fatal(err)
				}
			}

			s.waitSucceeded(t, []string{d.MessageId})
			e.waitSettled(t, 1)
			if requests, ok := s.counts(); requests != 2 || ok != 1 {
				t.Errorf("endpoint got %d requests, %d answered 2xx; want 2 and 1", requests, ok)
			}
			attempts := e.attemptsOf(t, d.MessageId, 2)
			second := attempts[1].StartedAt.AsTime()
			if !tc.published && second.Before(leaseEnd) {
				t.Errorf("retry sent at %v, before the dead worker's lease ended at %v", second, leaseEnd)
			}
			// The live worker's return of the published delivery carried the
			// same Nats-Msg-Id and was not stored again: DELIVERIES stored the
			// first delivery and one return.
			info, err := e.deliveriesInfo(t)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.LastSeq != 2 {
				t.Errorf("DELIVERIES stored %d messages, want 2 (the delivery and one return)", info.State.LastSeq)
			}
		})
	}
}

// deliveriesInfo returns the DELIVERIES stream's info.
func (e *env) deliveriesInfo(t *testing.T) (*jetstream.StreamInfo, error) {
	t.Helper()
	s, err := e.js.Stream(context.Background(), streams.Deliveries)
	if err != nil {
		return nil, err
	}
	return s.Info(context.Background())
}

// load publishes deliveries alternately to each endpoint until stop,
// retrying each until stored; it records the message ids of stored ones.
type load struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	stored []string
}

func (e *env) startLoad(t *testing.T, every time.Duration, eps ...*configv1.Endpoint) *load {
	t.Helper()
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-time.After(every):
			}
			d := newDelivery(eps[i%len(eps)])
			if err := e.publishRetrying(d, l.stop); err != nil {
				return
			}
			l.mu.Lock()
			l.stored = append(l.stored, d.MessageId)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { l.finish() })
	return l
}

// finish stops the load and returns the ids stored.
func (l *load) finish() []string {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.stored)
}

// count returns how many deliveries are stored so far.
func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.stored)
}

// publishRetrying stores d's event and d like publish, retrying while NATS
// is unreachable (the Nats-Msg-Ids make a retry store nothing twice), until
// stored or stop.
func (e *env) publishRetrying(d *eventv1.Delivery, stop <-chan struct{}) error {
	for {
		err := e.tryPublish(d)
		if err == nil {
			return nil
		}
		select {
		case <-stop:
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (e *env) tryPublish(d *eventv1.Delivery) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ev, err := proto.Marshal(&eventv1.Event{MessageId: d.GetMessageId(), TenantId: d.GetTenantId(), EventType: d.GetEventType(), Payload: d.GetPayload(), AcceptedAt: d.GetAcceptedAt()})
	if err != nil {
		return err
	}
	evMsg := &nats.Msg{Subject: streams.EventSubject(d.GetTenantId(), d.GetEventType()), Data: ev, Header: nats.Header{}}
	natsx.Inject(ctx, evMsg)
	ack, err := e.js.PublishMsg(ctx, evMsg, jetstream.WithMsgID(d.GetMessageId()))
	if err != nil {
		return err
	}
	d.EventSequence = ack.Sequence
	data, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: streams.DeliverySubject(d.GetEndpointId(), 1), Data: data}
	_, err = e.js.PublishMsg(ctx, msg, jetstream.WithMsgID(streams.DeliveryMsgID(d.GetMessageId(), d.GetEndpointId())))
	return err
}

// firstFails answers the first request of each message 503 and the rest 200,
// so every delivery goes through the retry schedule once.
func firstFails(_ string, n int) (int, http.Header) {
	if n == 1 {
		return http.StatusServiceUnavailable, nil
	}
	return http.StatusOK, nil
}

// redisOutage is how long TestRedisOutageLosesNothing keeps Redis down.
const redisOutage = 10 * time.Second

// TestRedisOutageLosesNothing stops Redis for 10 s under a steady load, with
// retries waiting in the schedule, and starts it again: what needs Redis
// pauses — no retry is claimed, no redelivery is sent unchecked, nothing is
// acked that Redis did not take — and resumes, and every stored delivery
// reaches its endpoint. (Every delivery needs its completion check, so
// only attempts already past it when Redis stopped reach the healthy
// endpoint during the outage; every delivery to the flaky endpoint needs a
// retry, so it gets none.) Production Redis persists its data (AOF); the test's redis-server
// does not, so it saves on shutdown to model that.
func TestRedisOutageLosesNothing(t *testing.T) {
	e := newEnv(t)
	flaky, healthy := newSink(t), newSink(t)
	flaky.setAnswer(firstFails)
	flakyEP, okEP := newEndpoint(t, flaky.srv.URL), newEndpoint(t, healthy.srv.URL)
	e.config.put(flakyEP)
	e.config.put(okEP)
	cfg := testConfig()
	cfg.RetryDelay = 100 * time.Millisecond
	cfg.Schedule = []time.Duration{0, 150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}
	e.startWorker(t, cfg, workerOptions{})
	l := e.startLoad(t, 5*time.Millisecond, flakyEP, okEP)

	// Retries are waiting in the schedule.
	testenv.WaitFor(t, waitTimeout, func() error {
		if n := e.scheduleLen(t, 1); n < 3 {
			return fmt.Errorf("%d retries scheduled", n)
		}
		return nil
	})
	scheduled := e.scheduleLen(t, 1)
	rdb := e.redis.Client(t)
	_ = rdb.ShutdownSave(context.Background()).Err() // the connection closes: no reply
	e.redis.Stop()
	stopped := time.Now()
	// While Redis is down, deliveries are stored but those that need it are
	// not sent: they are nakked and come back.
	before := l.count()
	c, err := e.js.Consumer(context.Background(), streams.Deliveries, streams.PartitionConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	waitRedelivered(t, c, 1)
	_, flakyOK := flaky.counts()
	_, healthyOK := healthy.counts()
	// The load's pace is the machine's: on a loaded one (CI has 2 cores)
	// publishing 100 or 200 deliveries takes far longer than on an idle
	// one, so these waits are generous; the counts checked below are exact.
	const loadWait = time.Minute
	testenv.WaitFor(t, redisOutage+loadWait, func() error {
		if down := time.Since(stopped); down < redisOutage {
			return fmt.Errorf("Redis down for %v of %v", down.Round(time.Millisecond), redisOutage)
		}
		if got := l.count(); got < before+100 {
			return fmt.Errorf("%d deliveries stored during the outage", got-before)
		}
		return nil
	})
	_, flakyOKDown := flaky.counts()
	_, healthyOKDown := healthy.counts()
	storedDown := l.count() - before
	e.redis.Start()
	down := time.Since(stopped)
	if flakyOKDown != flakyOK {
		t.Errorf("the flaky endpoint got %d deliveries through while Redis was down, want none: each needs a retry from the schedule", flakyOKDown-flakyOK)
	}
	testenv.WaitFor(t, loadWait, func() error {
		if got := l.count(); got < before+storedDown+200 {
			return fmt.Errorf("%d deliveries stored since Redis came back", got-before-storedDown)
		}
		return nil
	})
	stored := l.finish()
	var toFlaky, toOK []string
	for i, id := range stored {
		if i%2 == 0 {
			toFlaky = append(toFlaky, id)
		} else {
			toOK = append(toOK, id)
		}
	}
	// The backlog of the outage (every flaky delivery through a retry) is
	// delivered at the machine's pace: wait generously, then as usual.
	for _, c := range []struct {
		s    *sink
		want []string
	}{{flaky, toFlaky}, {healthy, toOK}} {
		testenv.WaitFor(t, loadWait, func() error {
			c.s.mu.Lock()
			defer c.s.mu.Unlock()
			missing := 0
			for _, id := range c.want {
				if c.s.okByID[id] == 0 {
					missing++
				}
			}
			if missing > 0 {
				return fmt.Errorf("%d of %d deliveries not through yet", missing, len(c.want))
			}
			return nil
		})
	}
	flaky.waitSucceeded(t, toFlaky)
	healthy.waitSucceeded(t, toOK)
	e.waitSettled(t, 1)
	// Exactly the stored deliveries got through, each at least once; a
	// repeat has the same webhook-id.
	for _, c := range []struct {
		name string
		s    *sink
		want []string
	}{{"flaky", flaky, toFlaky}, {"healthy", healthy, toOK}} {
		want := map[string]bool{}
		for _, id := range c.want {
			want[id] = true
		}
		got := map[string]bool{}
		for _, id := range c.s.succeeded() {
			if !want[id] {
				t.Errorf("%s endpoint got %s, which was not stored for it", c.name, id)
			}
			got[id] = true
		}
		if len(got) != len(want) {
			t.Errorf("%s endpoint got %d distinct deliveries, want %d", c.name, len(got), len(want))
		}
	}
	t.Logf("Redis down %v with %d retries scheduled; %d deliveries stored in all, %d during the outage; 2xx during the outage: flaky %d, healthy %d; duplicates (same webhook-id): %d flaky, %d healthy",
		down.Round(time.Millisecond), scheduled, len(stored), storedDown, flakyOKDown-flakyOK, healthyOKDown-healthyOK, flaky.duplicates(), healthy.duplicates())
}

// TestNATSRestartLosesNothing restarts the NATS server on its store
// directory under a steady load with retries in the schedule: every stored
// delivery reaches its endpoint.
func TestNATSRestartLosesNothing(t *testing.T) {
	e := newEnv(t)
	flaky, healthy := newSink(t), newSink(t)
	flaky.setAnswer(firstFails)
	flakyEP, okEP := newEndpoint(t, flaky.srv.URL), newEndpoint(t, healthy.srv.URL)
	e.config.put(flakyEP)
	e.config.put(okEP)
	cfg := testConfig()
	cfg.AckWait = 2 * time.Second // acks lost in the restart come back soon
	cfg.ClaimLease = time.Second
	cfg.Schedule = []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	w := e.startWorker(t, cfg, workerOptions{})
	l := e.startLoad(t, 5*time.Millisecond, flakyEP, okEP)

	testenv.WaitFor(t, waitTimeout, func() error {
		if n := e.scheduleLen(t, 1); n < 3 {
			return fmt.Errorf("%d retries scheduled", n)
		}
		return nil
	})
	before := l.count()
	e.nats.Restart()
	testenv.WaitFor(t, waitTimeout, func() error {
		if !w.nc.IsConnected() {
			return fmt.Errorf("worker not reconnected (%v)", w.nc.Status())
		}
		if got := l.count(); got < before+200 {
			return fmt.Errorf("%d deliveries stored since the restart", got-before)
		}
		return nil
	})
	stored := l.finish()
	var toFlaky, toOK []string
	for i, id := range stored {
		if i%2 == 0 {
			toFlaky = append(toFlaky, id)
		} else {
			toOK = append(toOK, id)
		}
	}
	flaky.waitSucceeded(t, toFlaky)
	healthy.waitSucceeded(t, toOK)
	e.waitSettled(t, 1)
	t.Logf("%d deliveries stored; duplicates (same webhook-id): %d flaky, %d healthy", len(stored), flaky.duplicates(), healthy.duplicates())
}
