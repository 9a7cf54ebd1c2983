package attemptlog

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

const (
	statePending  = eventv1.DeliveryState_DELIVERY_STATE_PENDING
	statePutOff   = eventv1.DeliveryState_DELIVERY_STATE_PUT_OFF
	stateRetrying = eventv1.DeliveryState_DELIVERY_STATE_RETRYING
	stateSucceed  = eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED
)

// state stores one state record through a batch of the STATES stream.
func (f *fixture) state(r *eventv1.StateRecord) {
	f.t.Helper()
	f.stSeq++
	b := f.s.NewBatch()
	defer b.Close()
	if r.Id == "" {
		r.Id = fmt.Sprintf("st-%d", f.stSeq)
	}
	if err := b.AddState(f.stSeq, r); err != nil {
		f.t.Fatal(err)
	}
	if err := b.Commit(streams.States, f.stSeq); err != nil {
		f.t.Fatal(err)
	}
}

// messageWith stores an event with payload at time at.
func (f *fixture) messageWith(tenant, typ string, at time.Time, payload string) string {
	f.t.Helper()
	id := ids.NewAt(ids.Message, at)
	f.evSeq++
	b := f.s.NewBatch()
	defer b.Close()
	ev := &eventv1.Event{MessageId: id, TenantId: tenant, EventType: typ, Timestamp: timestamppb.New(at), AcceptedAt: timestamppb.New(at), Payload: []byte(payload)}
	if err := b.AddEvent(f.evSeq, ev); err != nil {
		f.t.Fatal(err)
	}
	if err := b.Commit(streams.Events, f.evSeq); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func ids2(ds []Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.MessageID + "→" + d.EndpointID
	}
	return out
}

func TestStatesFoldDecisionsAndAttempts(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	s := openTest(t, t.TempDir(), 30*24*time.Hour, c)
	f := newFixture(t, s)
	ctx := context.Background()
	ep1, ep2 := ids.NewAt(ids.Endpoint, c.now.Add(-time.Hour)), ids.NewAt(ids.Endpoint, c.now.Add(-time.Hour))
	base := c.now.Add(-30 * time.Minute)
	var msgs []string
	for i := range 10 {
		at := base.Add(time.Duration(i) * time.Second)
		m := f.message("acme", "job.completed", at)
		msgs = append(msgs, m)
		f.state(&eventv1.StateRecord{TenantId: "acme", MessageId: m, EventType: "job.completed", EndpointIds: []string{ep1, ep2},
			State: statePending, Reason: "fanned out", At: timestamppb.New(at)})
	}
	count := func(ep string, st eventv1.DeliveryState) int {
		t.Helper()
		return len(all(t, 3, func(q Query) (Page[Delivery], error) {
			return s.EndpointDeliveries(ctx, "acme", ep, DeliveryQuery{Query: q, States: []eventv1.DeliveryState{st}})
		}))
	}
	if got := count(ep1, statePending); got != 10 {
		t.Fatalf("ep1 pending = %d, want 10", got)
	}
	// ep1 fails: messages 0–5 are put off, then message 0 is attempted
	// and left retrying, message 1 succeeds.
	for i := range 6 {
		at := base.Add(time.Minute + time.Duration(i)*time.Millisecond)
		f.state(&eventv1.StateRecord{TenantId: "acme", MessageId: msgs[i], EndpointIds: []string{ep1}, State: statePutOff,
			Reason: "endpoint failing", At: timestamppb.New(at), NextAttemptAt: timestamppb.New(at.Add(5 * time.Minute))})
	}
	f.attempt(newAttempt("acme", ep1, msgs[0], 1, base.Add(6*time.Minute), eventv1.Outcome_OUTCOME_HTTP_STATUS, stateRetrying))
	f.attempt(newAttempt("acme", ep1, msgs[1], 1, base.Add(6*time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, stateSucceed))
	// A fan-out redone later carries the event's accepted time: it does
	// not hide the success.
	f.state(&eventv1.StateRecord{TenantId: "acme", MessageId: msgs[1], EndpointIds: []string{ep1, ep2}, State: statePending,
		Reason: "fanned out", At: timestamppb.New(base.Add(time.Second))})
	for _, tc := range []struct {
		ep   string
		st   eventv1.DeliveryState
		want int
	}{
		{ep1, statePending, 4}, {ep1, statePutOff, 4}, {ep1, stateRetrying, 1}, {ep1, stateSucceed, 1},
		{ep2, statePending, 10}, {ep2, statePutOff, 0},
	} {
		if got := count(tc.ep, tc.st); got != tc.want {
			t.Errorf("%s %v = %d, want %d", tc.ep, tc.st, got, tc.want)
		}
	}
	d, err := s.Delivery(ctx, "acme", msgs[2], ep1)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != statePutOff || d.Reason != "endpoint failing" || !d.NextAttemptAt.Equal(base.Add(time.Minute+2*time.Millisecond+5*time.Minute)) || d.Attempts != 0 {
		t.Errorf("put-off delivery = %+v", d)
	}
	d, _ = s.Delivery(ctx, "acme", msgs[0], ep1)
	if d.State != stateRetrying || d.Attempts != 1 || d.NextAttemptAt.IsZero() {
		t.Errorf("retrying delivery = %+v", d)
	}
	// A resend after the retry makes it pending again, attempts kept.
	f.state(&eventv1.StateRecord{TenantId: "acme", MessageId: msgs[0], EndpointIds: []string{ep1}, State: statePending,
		Reason: "resent", At: timestamppb.New(base.Add(7 * time.Minute)), ResendId: "rs_1"})
	d, _ = s.Delivery(ctx, "acme", msgs[0], ep1)
	if d.State != statePending || d.Attempts != 1 || d.Reason != "resent" || !d.NextAttemptAt.IsZero() {
		t.Errorf("resent delivery = %+v", d)
	}
	if got := count(ep1, stateRetrying); got != 0 {
		t.Errorf("ep1 retrying after the resend = %d, want 0 (the old index key is removed)", got)
	}
	// The tenant's view over both endpoints, several states at once.
	held := all(t, 4, func(q Query) (Page[Delivery], error) {
		return s.TenantDeliveries(ctx, "acme", DeliveryQuery{Query: q, States: []eventv1.DeliveryState{statePending, statePutOff, stateRetrying}})
	})
	if len(held) != 19 { // ep1: 5 pending + 4 put off; ep2: 10 pending
		t.Errorf("tenant held deliveries = %d, want 19: %v", len(held), ids2(held))
	}
	for i := 1; i < len(held); i++ {
		if held[i].MessageCreatedAt.After(held[i-1].MessageCreatedAt) {
			t.Fatalf("tenant held deliveries not newest first at %d", i)
		}
	}
	// Another tenant sees none of it.
	other, err := s.TenantDeliveries(ctx, "other", DeliveryQuery{Query: Query{Limit: 50}, States: []eventv1.DeliveryState{statePending}})
	if err != nil || len(other.Items) != 0 {
		t.Errorf("other tenant = %v, %v; want nothing", other.Items, err)
	}
	other, err = s.EndpointDeliveries(ctx, "other", ep1, DeliveryQuery{Query: Query{Limit: 50}, States: []eventv1.DeliveryState{statePending}})
	if err != nil || len(other.Items) != 0 {
		t.Errorf("other tenant's view of ep1 = %v, %v; want nothing", other.Items, err)
	}
}

func TestPagingBothWays(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	// A short retention makes many buckets (4 minutes each), so pages cross
	// buckets both ways.
	s := openTest(t, t.TempDir(), 2*time.Hour, c)
	f := newFixture(t, s)
	ctx := context.Background()
	var want []string
	for i := range 120 {
		want = append(want, f.message("acme", "job.completed", c.now.Add(-time.Hour+time.Duration(i)*20*time.Second)))
	}
	slices.Reverse(want) // newest first
	page := func(q Query) Page[Message] {
		t.Helper()
		p, err := s.Messages(ctx, "acme", MessageQuery{Query: q})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	idsOf := func(p Page[Message]) []string {
		var out []string
		for _, m := range p.Items {
			out = append(out, m.ID)
		}
		return out
	}
	var pages []Page[Message]
	p := page(Query{Limit: 25})
	if p.Prev != "" {
		t.Errorf("first page has a previous page")
	}
	for {
		pages = append(pages, p)
		if p.Next == "" {
			break
		}
		p = page(Query{Limit: 25, Cursor: p.Next})
	}
	var got []string
	for _, p := range pages {
		got = append(got, idsOf(p)...)
	}
	if !slices.Equal(got, want) || len(pages) != 5 {
		t.Fatalf("forward: %d pages, %d messages; want 5 pages, the 120 messages newest first", len(pages), len(got))
	}
	// Back from the last page: every page again, the same items.
	p = pages[len(pages)-1]
	for i := len(pages) - 2; i >= 0; i-- {
		if p.Prev == "" {
			t.Fatalf("page %d has no previous page", i+1)
		}
		p = page(Query{Limit: 25, Cursor: p.Prev})
		if !slices.Equal(idsOf(p), idsOf(pages[i])) {
			t.Fatalf("back to page %d: %d items %v…, want %v…", i, len(p.Items), idsOf(p)[:1], idsOf(pages[i])[:1])
		}
	}
	if p.Prev != "" {
		t.Errorf("back at the first page, Prev = %q, want none", p.Prev)
	}
	// And forward again from a page reached backwards.
	p = page(Query{Limit: 25, Cursor: p.Next})
	if !slices.Equal(idsOf(p), idsOf(pages[1])) {
		t.Errorf("forward from the first page reached backwards differs from page 1")
	}
}

func TestMessagesByJob(t *testing.T) {
	c := &clock{now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	s := openTest(t, t.TempDir(), 30*24*time.Hour, c)
	f := newFixture(t, s)
	ctx := context.Background()
	at := c.now.Add(-time.Hour)
	a := f.messageWith("acme", "job.started", at, `{"type":"job.started","data":{"job_id":"job-42","n":1}}`)
	b := f.messageWith("acme", "job.completed", at.Add(time.Second), `{"type":"job.completed","data":{"job_id":"job-42"}}`)
	f.messageWith("acme", "job.completed", at.Add(2*time.Second), `{"type":"job.completed","data":{"job_id":"job-43"}}`)
	n := f.messageWith("acme", "job.completed", at.Add(3*time.Second), `{"type":"job.completed","data":{"job_id":7}}`)
	f.messageWith("other", "job.completed", at.Add(4*time.Second), `{"type":"job.completed","data":{"job_id":"job-42"}}`)
	f.messageWith("acme", "job.completed", at.Add(5*time.Second), `{"type":"job.completed","data":{"nested":{"job_id":"job-42"}}}`)
	for _, tc := range []struct {
		job, typ string
		want     []string
	}{
		{"job-42", "", []string{b, a}},
		{"job-42", "job.started", []string{a}},
		{"7", "", []string{n}},
		{"job-4", "", nil},
	} {
		p, err := s.MessagesByJob(ctx, "acme", tc.job, MessageQuery{Query: Query{Limit: 10}, EventType: tc.typ})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range p.Items {
			got = append(got, m.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("job %q type %q = %v, want %v", tc.job, tc.typ, got, tc.want)
		}
	}
}
