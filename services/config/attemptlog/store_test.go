package attemptlog

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openTest(t *testing.T, dir string, retention time.Duration, c *clock) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, Retention: retention, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fixture writes records through a Batch, numbering stream sequences.
type fixture struct {
	t         *testing.T
	s         *Store
	evSeq     uint64
	atSeq     uint64
	stSeq     uint64
	attempts  map[string]*eventv1.Attempt
	attemptAt map[string]uint64
}

func newFixture(t *testing.T, s *Store) *fixture {
	return &fixture{t: t, s: s, attempts: map[string]*eventv1.Attempt{}, attemptAt: map[string]uint64{}}
}

func (f *fixture) message(tenant, typ string, at time.Time) string {
	f.t.Helper()
	id := ids.NewAt(ids.Message, at)
	f.evSeq++
	b := f.s.NewBatch()
	defer b.Close()
	ev := &eventv1.Event{MessageId: id, TenantId: tenant, EventType: typ, Timestamp: timestamppb.New(at.Add(-time.Second)), AcceptedAt: timestamppb.New(at), Payload: []byte(`{}`)}
	if err := b.AddEvent(f.evSeq, ev); err != nil {
		f.t.Fatal(err)
	}
	if err := b.Commit(streams.Events, f.evSeq); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func newAttempt(tenant, ep, msg string, n uint32, started time.Time, outcome eventv1.Outcome, state eventv1.DeliveryState) *eventv1.Attempt {
	a := &eventv1.Attempt{
		Id: ids.NewAt(ids.Attempt, started.Add(10*time.Millisecond)), MessageId: msg, TenantId: tenant, EndpointId: ep,
		EventType: "job.completed", Attempt: n, StartedAt: timestamppb.New(started), DurationUs: 10000,
		Outcome: outcome, State: state,
	}
	switch outcome {
	case eventv1.Outcome_OUTCOME_SUCCESS:
		a.StatusCode = 200
	case eventv1.Outcome_OUTCOME_HTTP_STATUS:
		a.StatusCode = 500
	}
	if state == eventv1.DeliveryState_DELIVERY_STATE_RETRYING {
		a.NextAttemptAt = timestamppb.New(started.Add(5 * time.Minute))
	}
	return a
}

func (f *fixture) attempt(a *eventv1.Attempt) string {
	f.t.Helper()
	f.atSeq++
	b := f.s.NewBatch()
	defer b.Close()
	if err := b.AddAttempt(f.atSeq, a); err != nil {
		f.t.Fatal(err)
	}
	if err := b.Commit(streams.Attempts, f.atSeq); err != nil {
		f.t.Fatal(err)
	}
	f.attempts[a.Id] = a
	f.attemptAt[a.Id] = f.atSeq
	return a.Id
}

// all pages through a list and returns every item and the page sizes.
func all[T any](t *testing.T, limit int, page func(q Query) (Page[T], error)) []T {
	t.Helper()
	var out []T
	q := Query{Limit: limit}
	for i := 0; ; i++ {
		p, err := page(q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) > limit {
			t.Fatalf("page of %d items, limit %d", len(p.Items), limit)
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out
		}
		if len(p.Items) != limit {
			t.Fatalf("page %d has %d items and a next page; want full pages", i, len(p.Items))
		}
		q.Cursor = p.Next
		if i > 1000 {
			t.Fatal("endless pages")
		}
	}
}

func TestListsNewestFirstAcrossBucketsWithStableCursors(t *testing.T) {
	c := &clock{now: time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)}
	s := openTest(t, t.TempDir(), 0, c)
	f := newFixture(t, s)
	ep1, ep2 := ids.NewAt(ids.Endpoint, c.now.Add(-40*24*time.Hour)), ids.NewAt(ids.Endpoint, c.now.Add(-40*24*time.Hour))
	other := ids.NewAt(ids.Endpoint, c.now.Add(-40*24*time.Hour))

	// 12 messages over 6 days for acme (every 12 h), 2 for globex.
	var msgs []string
	for i := range 12 {
		at := c.now.Add(-time.Duration(12-i) * 12 * time.Hour)
		typ := "job.completed"
		if i%3 == 0 {
			typ = "job.failed"
		}
		msgs = append(msgs, f.message("acme", typ, at))
	}
	g1 := f.message("globex", "job.completed", c.now.Add(-time.Hour))
	f.message("globex", "job.completed", c.now.Add(-2*time.Hour))

	// Each acme message: ep1 fails once then succeeds; ep2 succeeds.
	for i, m := range msgs {
		at, _ := idTime(m)
		f.attempt(newAttempt("acme", ep1, m, 1, at.Add(time.Second), eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_RETRYING))
		if i != 11 { // the newest is still retrying
			f.attempt(newAttempt("acme", ep1, m, 2, at.Add(6*time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED))
		}
		f.attempt(newAttempt("acme", ep2, m, 1, at.Add(2*time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED))
	}
	f.attempt(newAttempt("globex", other, g1, 1, c.now.Add(-time.Hour), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING))
	ctx := context.Background()

	t.Run("messages", func(t *testing.T) {
		got := all(t, 5, func(q Query) (Page[Message], error) { return s.Messages(ctx, "acme", MessageQuery{Query: q}) })
		var gotIDs []string
		for _, m := range got {
			gotIDs = append(gotIDs, m.ID)
			if m.TenantID != "acme" || m.Sequence == 0 {
				t.Errorf("message %+v: want tenant acme and a sequence", m)
			}
		}
		want := slices.Clone(msgs)
		slices.Reverse(want)
		if !slices.Equal(gotIDs, want) {
			t.Errorf("messages = %v\nwant newest first %v", gotIDs, want)
		}
		failed := all(t, 2, func(q Query) (Page[Message], error) {
			return s.Messages(ctx, "acme", MessageQuery{Query: q, EventType: "job.failed"})
		})
		if len(failed) != 4 || failed[0].ID != msgs[9] || failed[3].ID != msgs[0] {
			t.Errorf("job.failed messages = %d, want 4, newest %s first", len(failed), msgs[9])
		}
		at3, _ := idTime(msgs[3])
		at7, _ := idTime(msgs[7])
		ranged := all(t, 2, func(q Query) (Page[Message], error) {
			q.After, q.Before = at3, at7 // after ≤ t < before
			return s.Messages(ctx, "acme", MessageQuery{Query: q})
		})
		if len(ranged) != 4 || ranged[0].ID != msgs[6] || ranged[3].ID != msgs[3] {
			t.Errorf("messages in [msg3, msg7) = %d items, want msgs 6..3", len(ranged))
		}
		g := all(t, 50, func(q Query) (Page[Message], error) { return s.Messages(ctx, "globex", MessageQuery{Query: q}) })
		if len(g) != 2 || g[0].ID != g1 {
			t.Errorf("globex messages = %+v, want 2 with %s first", g, g1)
		}
	})

	t.Run("endpoint attempts", func(t *testing.T) {
		got := all(t, 4, func(q Query) (Page[AttemptSummary], error) {
			return s.EndpointAttempts(ctx, "acme", ep1, AttemptQuery{Query: q})
		})
		if len(got) != 23 {
			t.Fatalf("ep1 attempts = %d, want 23", len(got))
		}
		for i := 1; i < len(got); i++ {
			if got[i].StartedAt.After(got[i-1].StartedAt) {
				t.Errorf("attempt %d started %v, after attempt %d at %v: want newest first", i, got[i].StartedAt, i-1, got[i-1].StartedAt)
			}
		}
		fails := all(t, 5, func(q Query) (Page[AttemptSummary], error) {
			return s.EndpointAttempts(ctx, "acme", ep1, AttemptQuery{Query: q, Outcome: eventv1.Outcome_OUTCOME_HTTP_STATUS})
		})
		if len(fails) != 12 || fails[0].Outcome != eventv1.Outcome_OUTCOME_HTTP_STATUS || fails[0].StatusCode != 500 || fails[0].State != eventv1.DeliveryState_DELIVERY_STATE_RETRYING || fails[0].NextAttemptAt.IsZero() {
			t.Errorf("ep1 http_status attempts = %d (first %+v), want 12 retrying 500s", len(fails), fails[0])
		}
		if n := len(all(t, 5, func(q Query) (Page[AttemptSummary], error) {
			return s.EndpointAttempts(ctx, "acme", ep1, AttemptQuery{Query: q, Outcome: eventv1.Outcome_OUTCOME_TIMEOUT})
		})); n != 0 {
			t.Errorf("ep1 timeouts = %d, want 0", n)
		}
		// A cursor stays valid when newer attempts arrive.
		p, err := s.EndpointAttempts(ctx, "acme", ep2, AttemptQuery{Query: Query{Limit: 3}})
		if err != nil {
			t.Fatal(err)
		}
		f.attempt(newAttempt("acme", ep2, msgs[11], 2, c.now.Add(-time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED))
		p2, err := s.EndpointAttempts(ctx, "acme", ep2, AttemptQuery{Query: Query{Limit: 3, Cursor: p.Next}})
		if err != nil {
			t.Fatal(err)
		}
		if p2.Items[0].MessageID != msgs[8] {
			t.Errorf("second page starts at %s, want %s (unmoved by newer attempts)", p2.Items[0].MessageID, msgs[8])
		}
	})

	t.Run("message attempts and deliveries", func(t *testing.T) {
		got := all(t, 2, func(q Query) (Page[AttemptSummary], error) { return s.MessageAttempts(ctx, "acme", msgs[4], q) })
		if len(got) != 3 || got[0].EndpointID != ep1 || got[0].Attempt != 2 || got[2].Attempt != 1 || got[2].EndpointID != ep1 {
			t.Errorf("attempts of msg 4 = %+v, want ep1 #2, ep2 #1, ep1 #1", got)
		}
		ds, err := s.MessageDeliveries(ctx, "acme", msgs[11], 100)
		if err != nil {
			t.Fatal(err)
		}
		byEP := map[string]Delivery{}
		for _, d := range ds {
			byEP[d.EndpointID] = d
		}
		if d := byEP[ep1]; d.State != eventv1.DeliveryState_DELIVERY_STATE_RETRYING || d.Attempts != 1 || d.NextAttemptAt.IsZero() || d.LastStatusCode != 500 {
			t.Errorf("msg 11 to ep1 = %+v, want retrying after 1 attempt with a next attempt time", d)
		}
		f.attempt(newAttempt("acme", ep1, msgs[11], 2, c.now.Add(-30*time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED))
		d, err := s.Delivery(ctx, "acme", msgs[11], ep1)
		if err != nil || d.State != eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED || d.Attempts != 2 || d.LastStatusCode != 200 {
			t.Errorf("msg 11 to ep1 after its retry = %+v (%v), want succeeded after 2 attempts", d, err)
		}
		list := all(t, 5, func(q Query) (Page[Delivery], error) {
			return s.EndpointDeliveries(ctx, "acme", ep1, DeliveryQuery{Query: q})
		})
		if len(list) != 12 || list[0].MessageID != msgs[11] || list[11].MessageID != msgs[0] {
			t.Errorf("ep1 deliveries = %d, want 12 newest message first", len(list))
		}
	})

	t.Run("attempt by id", func(t *testing.T) {
		for id, a := range f.attempts {
			seq, err := s.AttemptSequence(ctx, a.TenantId, id)
			if err != nil || seq != f.attemptAt[id] {
				t.Errorf("AttemptSequence(%s) = %d, %v; want %d", id, seq, err, f.attemptAt[id])
			}
		}
	})

	t.Run("tenants are isolated", func(t *testing.T) {
		if _, err := s.Message(ctx, "globex", msgs[0]); !errors.Is(err, ErrNotFound) {
			t.Errorf("globex reading acme's message: %v, want ErrNotFound", err)
		}
		for id, a := range f.attempts {
			if a.TenantId == "acme" {
				if _, err := s.AttemptSequence(ctx, "globex", id); !errors.Is(err, ErrNotFound) {
					t.Errorf("globex reading acme's attempt: %v, want ErrNotFound", err)
				}
				break
			}
		}
		p, err := s.EndpointAttempts(ctx, "globex", ep1, AttemptQuery{Query: Query{Limit: 10}})
		if err != nil || len(p.Items) != 0 {
			t.Errorf("globex listing acme's endpoint = %d items (%v), want none", len(p.Items), err)
		}
		ds, _ := s.MessageDeliveries(ctx, "globex", msgs[0], 10)
		if len(ds) != 0 {
			t.Errorf("globex reading acme's deliveries = %v", ds)
		}
	})

	t.Run("stats", func(t *testing.T) {
		st, err := s.EndpointStats(ctx, "acme", ep1, 24)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 24 || !st[23].Hour.Equal(c.now.Truncate(time.Hour)) || !st[0].Hour.Equal(c.now.Truncate(time.Hour).Add(-23*time.Hour)) {
			t.Fatalf("stats hours = %d from %v to %v, want 24 ending at the current hour", len(st), st[0].Hour, st[len(st)-1].Hour)
		}
		var ok, bad uint64
		for _, h := range st {
			ok += h.Success
			bad += h.Failure
		}
		// In the last 24 h (13:00 yesterday to now): msg 11's failure at
		// midnight and its retry half a minute ago; msg 10's attempts were
		// at noon yesterday.
		if ok != 1 || bad != 1 {
			t.Errorf("ep1 last 24 h: %d successes, %d failures; want 1 and 1 (%+v)", ok, bad, st)
		}
		if g, _ := s.EndpointStats(ctx, "globex", ep1, 24); g[23].Success+g[23].Failure != 0 {
			t.Errorf("globex sees acme's stats: %+v", g[23])
		}
	})

	t.Run("bad cursor", func(t *testing.T) {
		for _, c := range []string{"!!", "AAAA", encodeCursor(cursorOlder, []byte("short"))} {
			if _, err := s.Messages(ctx, "acme", MessageQuery{Query: Query{Limit: 5, Cursor: c}}); !errors.Is(err, ErrBadCursor) {
				t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
			}
		}
	})
}

func TestFailedDeliveriesAreTheLatestFailures(t *testing.T) {
	c := &clock{now: time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)}
	s := openTest(t, t.TempDir(), 0, c)
	f := newFixture(t, s)
	ep := ids.NewAt(ids.Endpoint, c.now.Add(-time.Hour*24*10))
	ctx := context.Background()
	var want []string
	var retryingID string
	for i := range 5 {
		at := c.now.Add(-time.Duration(5-i) * 24 * time.Hour)
		m := f.message("acme", "job.completed", at)
		switch i {
		case 0, 2, 4: // exhausted (4: dropped)
			st := eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED
			if i == 4 {
				st = eventv1.DeliveryState_DELIVERY_STATE_DROPPED
			}
			f.attempt(newAttempt("acme", ep, m, 8, at.Add(time.Hour), eventv1.Outcome_OUTCOME_CONNECTION, st))
			want = append(want, m)
		case 1: // exhausted, then resent and succeeded
			f.attempt(newAttempt("acme", ep, m, 8, at.Add(time.Hour), eventv1.Outcome_OUTCOME_CONNECTION, eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED))
			f.attempt(newAttempt("acme", ep, m, 1, at.Add(2*time.Hour), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED))
		case 3: // still retrying, twice
			f.attempt(newAttempt("acme", ep, m, 1, at.Add(time.Hour), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING))
			f.attempt(newAttempt("acme", ep, m, 2, at.Add(2*time.Hour), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING))
			retryingID = m
		}
	}
	got, more, err := s.FailedDeliveries(ctx, "acme", ep, c.now.Add(-6*24*time.Hour), c.now, 100)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []string
	for _, d := range got {
		gotIDs = append(gotIDs, d.MessageID)
	}
	if !slices.Equal(gotIDs, want) || more {
		t.Errorf("failed deliveries = %v (more %v), want oldest first %v", gotIDs, more, want)
	}
	got, more, _ = s.FailedDeliveries(ctx, "acme", ep, c.now.Add(-6*24*time.Hour), c.now, 2)
	if len(got) != 2 || !more || got[1].MessageID != want[1] {
		t.Errorf("limit 2: %d deliveries, more %v; want the oldest 2 and more", len(got), more)
	}
	since := c.now.Add(-3 * 24 * time.Hour)
	got, _, _ = s.FailedDeliveries(ctx, "acme", ep, since, c.now, 100)
	if len(got) != 2 || got[0].MessageID != want[1] {
		t.Errorf("since 3 days ago: %v, want the last 2", got)
	}
	if got, _, _ := s.FailedDeliveries(ctx, "globex", ep, c.now.Add(-6*24*time.Hour), c.now, 100); len(got) != 0 {
		t.Errorf("another tenant's failed deliveries: %v", got)
	}

	// With retrying, the still-retrying delivery (i == 3) is in its place
	// by time, each delivery once; the limit still holds.
	withRetrying := append(slices.Clone(want[:2]), retryingID)
	withRetrying = append(withRetrying, want[2])
	got, more, err = s.RecoverableDeliveries(ctx, "acme", ep, c.now.Add(-6*24*time.Hour), c.now, 100, true)
	if err != nil {
		t.Fatal(err)
	}
	gotIDs = nil
	for _, d := range got {
		gotIDs = append(gotIDs, d.MessageID)
	}
	if !slices.Equal(gotIDs, withRetrying) || more {
		t.Errorf("failed and retrying deliveries = %v (more %v), want oldest first %v", gotIDs, more, withRetrying)
	}
	got, more, _ = s.RecoverableDeliveries(ctx, "acme", ep, c.now.Add(-6*24*time.Hour), c.now, 3, true)
	if len(got) != 3 || !more || got[2].MessageID != retryingID {
		t.Errorf("limit 3 with retrying: %d deliveries, more %v; want the oldest 3 and more", len(got), more)
	}
}

func TestRetentionRemovesOldData(t *testing.T) {
	c := &clock{now: time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)}
	s := openTest(t, t.TempDir(), 2*time.Hour, c) // buckets of 4 minutes
	f := newFixture(t, s)
	ep := ids.NewAt(ids.Endpoint, c.now.Add(-time.Hour*24))
	ctx := context.Background()

	old := f.message("acme", "job.completed", c.now.Add(-3*time.Hour)) // beyond the retention: not indexed
	f.attempt(newAttempt("acme", ep, old, 1, c.now.Add(-3*time.Hour), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED))
	m := f.message("acme", "job.completed", c.now.Add(-time.Hour))
	aid := f.attempt(newAttempt("acme", ep, m, 1, c.now.Add(-time.Hour), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED))
	if _, err := s.Message(ctx, "acme", old); !errors.Is(err, ErrNotFound) {
		t.Errorf("message older than the retention: %v, want ErrNotFound (not indexed)", err)
	}
	if _, err := s.Message(ctx, "acme", m); err != nil {
		t.Fatalf("recent message: %v", err)
	}
	if n := dataKeys(t, s); n == 0 {
		t.Fatal("no data stored")
	}

	c.Advance(75 * time.Minute) // m is 2 h 15 min old: past the retention and its bucket
	if err := s.Sweep(); err != nil {
		t.Fatal(err)
	}
	if n := dataKeys(t, s); n != 0 {
		t.Errorf("%d data keys after the sweep, want 0", n)
	}
	if _, err := s.Message(ctx, "acme", m); !errors.Is(err, ErrNotFound) {
		t.Errorf("message after the sweep: %v, want ErrNotFound", err)
	}
	if _, err := s.AttemptSequence(ctx, "acme", aid); !errors.Is(err, ErrNotFound) {
		t.Errorf("attempt after the sweep: %v, want ErrNotFound", err)
	}
	p, err := s.EndpointAttempts(ctx, "acme", ep, AttemptQuery{Query: Query{Limit: 10}})
	if err != nil || len(p.Items) != 0 {
		t.Errorf("endpoint attempts after the sweep: %d (%v), want none", len(p.Items), err)
	}
	if pos, _ := s.Position(streams.Attempts); pos != f.atSeq {
		t.Errorf("attempts position after the sweep = %d, want %d (positions are kept)", pos, f.atSeq)
	}
}

// dataKeys counts the keys under the data prefix.
func dataKeys(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	_, err := s.iterate(context.Background(), []byte{prefixData}, []byte{prefixData + 1}, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReopenKeepsDataAndAnotherRetentionRebuilds(t *testing.T) {
	c := &clock{now: time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, s)
	m := f.message("acme", "job.completed", c.now.Add(-time.Hour))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, 0, c)
	if _, err := s.Message(context.Background(), "acme", m); err != nil {
		t.Errorf("message after reopening: %v", err)
	}
	if pos, _ := s.Position(streams.Events); pos != 1 {
		t.Errorf("events position after reopening = %d, want 1", pos)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, 7*24*time.Hour, c)
	if pos, _ := s.Position(streams.Events); pos != 0 {
		t.Errorf("events position with another retention = %d, want 0 (rebuilt from the streams)", pos)
	}
	if n := dataKeys(t, s); n != 0 {
		t.Errorf("%d data keys with another retention, want 0", n)
	}
}

func TestIDTime(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 123e6, time.UTC)
	for _, prefix := range []string{ids.Message, ids.Attempt, ids.Endpoint} {
		got, ok := idTime(ids.NewAt(prefix, at))
		if !ok || !got.Equal(at) {
			t.Errorf("idTime(%s id) = %v, %v; want %v", prefix, got, ok, at)
		}
	}
	for _, bad := range []string{"", "msg_", "msg_123", "msg_" + string(make([]byte, 26)), "msg_ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "plain"} {
		if _, ok := idTime(bad); ok {
			t.Errorf("idTime(%q) ok, want not", bad)
		}
	}
}

func TestSortKeyRoundTrip(t *testing.T) {
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC)
	k := sortKey(at, "atmpt_X")
	got, id, ok := parseSortKey(k)
	if !ok || !got.Equal(at) || id != "atmpt_X" {
		t.Errorf("parseSortKey(sortKey) = %v %q %v", got, id, ok)
	}
	later, earlier := sortKey(at.Add(time.Nanosecond), "a"), sortKey(at.Add(-time.Nanosecond), "a")
	if string(later) >= string(k) || string(earlier) <= string(k) {
		t.Error("sort keys are not newest first")
	}
	if string(earlierKey(at)) <= string(k) || string(earlierKey(at)) > string(earlier) {
		t.Errorf("earlierKey(t) is not between items at t and items earlier")
	}
}
