package delivery

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// sink is an endpoint for tests with many requests: it answers each with
// the status its mode gives (200 unless set), counts requests per webhook-id,
// and keeps the order of the ones it answered 2xx.
type sink struct {
	srv *httptest.Server

	mu       sync.Mutex
	answer   func(id string, n int) (status int, header http.Header)
	requests int
	byID     map[string]int
	ok       []string
	okByID   map[string]int
	// changed is closed and replaced after every request.
	changed chan struct{}
}

func newSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{byID: map[string]int{}, okByID: map[string]int{}, changed: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get(signature.HeaderID)
		s.mu.Lock()
		s.requests++
		s.byID[id]++
		status, h := http.StatusOK, http.Header(nil)
		if s.answer != nil {
			status, h = s.answer(id, s.byID[id])
		}
		if status >= 200 && status < 300 {
			s.ok = append(s.ok, id)
			s.okByID[id]++
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// setAnswer sets how the sink answers: status (and headers) for the n-th
// request of webhook-id id.
func (s *sink) setAnswer(f func(id string, n int) (int, http.Header)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = f
}

// status makes the sink answer every request with code.
func (s *sink) status(code int) {
	s.setAnswer(func(string, int) (int, http.Header) { return code, nil })
}

// counts returns the number of requests and of 2xx answers.
func (s *sink) counts() (requests, ok int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, len(s.ok)
}

// succeeded returns the webhook-ids answered 2xx, in order.
func (s *sink) succeeded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ok...)
}

// waitSucceeded waits until every id in ids was answered 2xx.
func (s *sink) waitSucceeded(t *testing.T, ids []string) {
	t.Helper()
	testenv.WaitFor(t, waitTimeout, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		missing := 0
		for _, id := range ids {
			if s.okByID[id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d messages not delivered yet (%d requests so far)", missing, len(ids), s.requests)
		}
		return nil
	})
}

// duplicates returns how many 2xx answers were for ids already answered.
func (s *sink) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.okByID {
		n += k - 1
	}
	return n
}

// opCollector records the operational events published on NATS.
type opCollector struct {
	mu     sync.Mutex
	events []*eventv1.OperationalEvent
}

// collectOps subscribes to every operational event.
func (e *env) collectOps(t *testing.T) *opCollector {
	t.Helper()
	c := &opCollector{}
	nc := e.nats.Conn(t)
	_, err := nc.Subscribe(streams.OperationalPrefix+".>", func(m *nats.Msg) {
		ev := &eventv1.OperationalEvent{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			t.Errorf("undecodable operational event on %s: %v", m.Subject, err)
			return
		}
		if want := streams.OperationalSubject(ev.GetType()); m.Subject != want {
			t.Errorf("operational event %s published on %s, want %s", ev.GetType(), m.Subject, want)
		}
		c.mu.Lock()
		c.events = append(c.events, ev)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return c
}

// wait waits until an event of type typ arrives for which match (may be
// nil) holds, and returns it.
func (c *opCollector) wait(t *testing.T, typ string, match func(*eventv1.OperationalEvent) bool) *eventv1.OperationalEvent {
	t.Helper()
	var got *eventv1.OperationalEvent
	testenv.WaitFor(t, waitTimeout, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, ev := range c.events {
			if ev.GetType() == typ && (match == nil || match(ev)) {
				got = ev
				return nil
			}
		}
		return fmt.Errorf("no %s event among %d", typ, len(c.events))
	})
	return got
}

// count returns how many events of type typ arrived.
func (c *opCollector) count(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ev := range c.events {
		if ev.GetType() == typ {
			n++
		}
	}
	return n
}

// allAttempts returns every record in ATTEMPTS now.
func (e *env) allAttempts(t *testing.T) []*eventv1.Attempt {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, streams.Attempts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventv1.Attempt
	for uint64(len(out)) < info.State.Msgs {
		batch, err := c.FetchNoWait(int(info.State.Msgs) - len(out))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			a := &eventv1.Attempt{}
			if err := proto.Unmarshal(m.Data(), a); err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
			n++
		}
		if n == 0 {
			break
		}
	}
	return out
}

// attemptsOf waits until ATTEMPTS holds want records of message msgID and
// returns them by attempt number.
func (e *env) attemptsOf(t *testing.T, msgID string, want int) []*eventv1.Attempt {
	t.Helper()
	var got []*eventv1.Attempt
	testenv.WaitFor(t, waitTimeout, func() error {
		got = got[:0]
		for _, a := range e.allAttempts(t) {
			if a.GetMessageId() == msgID {
				got = append(got, a)
			}
		}
		if len(got) < want {
			return fmt.Errorf("%d attempt records of %s, want %d", len(got), msgID, want)
		}
		return nil
	})
	return got
}

// scheduleLen returns how many items the retry schedule holds, leased ones
// included.
func (e *env) scheduleLen(t *testing.T, partitions int) int64 {
	t.Helper()
	q, err := retryq.New(e.redis.Client(t), retryq.Options{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for p := 0; p < partitions; p++ {
		n, err := q.Len(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// waitSettled waits until DELIVERIES and the retry schedule are both empty.
func (e *env) waitSettled(t *testing.T, partitions int) {
	t.Helper()
	e.waitDeliveriesEmpty(t)
	testenv.WaitFor(t, waitTimeout, func() error {
		if n := e.scheduleLen(t, partitions); n != 0 {
			return fmt.Errorf("retry schedule holds %d items", n)
		}
		return nil
	})
	e.waitDeliveriesEmpty(t)
}
