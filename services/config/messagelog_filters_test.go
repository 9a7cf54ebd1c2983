package config

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestMessageLogFilters: ?event_type= (one or several), ?since=/?until=
// and their combination with ?state= on the tenant's and an endpoint's
// message log give exactly the matching rows, in full pages (a message
// with several matching deliveries is one row and never makes a page
// short), the same pages paging back with prev_iterator; bad values are a
// 400 naming the parameter.
func TestMessageLogFilters(t *testing.T) {
	e := newLogEnv(t)
	_, acme := e.newTenant("acme")
	a := e.newEndpoint(acme, map[string]any{"url": "https://example.com/a"})
	b := e.newEndpoint(acme, map[string]any{"url": "https://example.com/b"})
	c := e.newEndpoint(acme, map[string]any{"url": "https://example.com/c"})
	typeNames := []string{"job.completed", "job.failed", "invoice.paid"}
	start := time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)
	// Message i (at start + i s, of type typeNames[i%3]) goes to a, b and c:
	// a succeeds; b succeeds for odd i and is put off for even i; c is
	// retrying for i%4 == 0 and succeeds otherwise.
	var msgs []string // oldest first
	for i := range 120 {
		at := start.Add(time.Duration(i) * time.Second)
		typ := typeNames[i%3]
		m := e.publishEvent("acme", typ, at)
		msgs = append(msgs, m)
		e.publishState(&eventv1.StateRecord{TenantId: "acme", MessageId: m, EventType: typ, EndpointIds: []string{a.ID, b.ID, c.ID},
			State: eventv1.DeliveryState_DELIVERY_STATE_PENDING, Reason: "fanned out", At: timestamppb.New(at)})
		e.publishAttempt("acme", a.ID, m, 1, at.Add(time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		if i%2 == 1 {
			e.publishAttempt("acme", b.ID, m, 1, at.Add(time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		} else {
			e.publishState(&eventv1.StateRecord{TenantId: "acme", MessageId: m, EventType: typ, EndpointIds: []string{b.ID},
				State: eventv1.DeliveryState_DELIVERY_STATE_PUT_OFF, Reason: "endpoint failing", At: timestamppb.New(at.Add(2 * time.Second)),
				NextAttemptAt: timestamppb.New(at.Add(time.Hour))})
		}
		if i%4 == 0 {
			e.publishAttempt("acme", c.ID, m, 1, at.Add(time.Second), eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
		} else {
			e.publishAttempt("acme", c.ID, m, 1, at.Add(time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		}
	}
	e.indexed()
	ts := func(i int) string {
		return url.QueryEscape(start.Add(time.Duration(i) * time.Second).Format(time.RFC3339))
	}
	// want is the ids of the messages whose index keep accepts, newest first.
	want := func(keep func(i int) bool) []string {
		var out []string
		for i := len(msgs) - 1; i >= 0; i-- {
			if keep(i) {
				out = append(out, msgs[i])
			}
		}
		return out
	}
	completedOrFailed := func(i int) bool { return i%3 != 2 }
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"no filter", "/v1/messages?", want(func(int) bool { return true })},
		{"one type", "/v1/messages?event_type=job.failed", want(func(i int) bool { return i%3 == 1 })},
		{"two types", "/v1/messages?event_type=job.completed,job.failed", want(completedOrFailed)},
		{"since, until", "/v1/messages?since=" + ts(30) + "&until=" + ts(90), want(func(i int) bool { return i >= 30 && i < 90 })},
		{"types and time", "/v1/messages?event_type=job.completed,invoice.paid&since=" + ts(10) + "&until=" + ts(100),
			want(func(i int) bool { return i%3 != 1 && i >= 10 && i < 100 })},
		{"states only", "/v1/messages?state=succeeded,retrying", want(func(int) bool { return true })},
		{"state and type", "/v1/messages?state=put_off&event_type=job.completed", want(func(i int) bool { return i%6 == 0 })},
		// Every message has a succeeded delivery, most two or three: the
		// tenant's list holds up to 3 items per message.
		{"state, two types, since", "/v1/messages?state=succeeded&event_type=job.completed,job.failed&since=" + ts(20),
			want(func(i int) bool { return completedOrFailed(i) && i >= 20 })},
		{"held states, types, range", "/v1/messages?state=put_off,retrying&event_type=job.completed,job.failed&since=" + ts(8) + "&until=" + ts(110),
			want(func(i int) bool { return i%2 == 0 && completedOrFailed(i) && i >= 8 && i < 110 })},
		{"job id and type", "/v1/messages?job_id=job_" + msgs[7] + "&event_type=job.failed,invoice.paid", []string{msgs[7]}},
		{"job id, other type", "/v1/messages?job_id=job_" + msgs[7] + "&event_type=job.completed", nil},
		{"message id in range", "/v1/messages?message_id=" + msgs[7] + "&since=" + ts(7) + "&until=" + ts(8), []string{msgs[7]}},
		{"message id out of range", "/v1/messages?message_id=" + msgs[7] + "&since=" + ts(8), nil},
		{"message id, other type", "/v1/messages?message_id=" + msgs[7] + "&event_type=job.completed", nil},
		{"endpoint, type", "/v1/endpoints/" + b.ID + "/message-log?event_type=invoice.paid", want(func(i int) bool { return i%3 == 2 })},
		{"endpoint, state, types, until", "/v1/endpoints/" + b.ID + "/message-log?state=put_off&event_type=job.failed,invoice.paid&until=" + ts(60),
			want(func(i int) bool { return i%2 == 0 && i%3 != 0 && i < 60 })},
		{"endpoint, state, since", "/v1/endpoints/" + c.ID + "/message-log?state=retrying&since=" + ts(40), want(func(i int) bool { return i%4 == 0 && i >= 40 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range []int{7, 50} {
				got := walkLog(e, acme, tc.path, limit)
				if !slices.Equal(got, tc.want) {
					t.Errorf("limit %d: %d rows, want %d: got %v, want %v", limit, len(got), len(tc.want), got, tc.want)
				}
			}
		})
	}

	t.Run("bad values", func(t *testing.T) {
		for _, tc := range []struct{ path, field, message string }{
			{"/v1/messages?since=yesterday", "since", `since must be an RFC 3339 time such as 2026-12-07T10:00:00Z, got "yesterday"`},
			{"/v1/messages?until=2026-12-07", "until", `until must be an RFC 3339 time such as 2026-12-07T10:00:00Z, got "2026-12-07"`},
			{"/v1/endpoints/" + b.ID + "/message-log?since=" + ts(10) + "&until=" + ts(10), "until", "until must be later than since"},
			{"/v1/messages?since=" + ts(10) + "&after=" + ts(10), "since", "since and after are the same bound; give one of them"},
			{"/v1/messages?event_type=job.completed,,job.failed", "event_type", "event_type has an empty name"},
			{"/v1/messages?event_type=job.*", "event_type", `event_type "job.*" is not an event type name`},
			{"/v1/endpoints/" + b.ID + "/message-log?event_type=job..failed", "event_type", `event_type "job..failed" is not an event type name`},
			{"/v1/messages?event_type=" + strings.Repeat("a,", 20) + "a", "event_type", "event_type lists 21 event types; at most 20"},
			{"/v1/messages?state=lost", "state", `state must be pending, put_off, retrying, succeeded, failed, dropped or held`},
			{"/v1/endpoints/" + b.ID + "/deliveries?event_type=a%20b", "event_type", `event_type "a b" is not an event type name`},
		} {
			status, data := e.api(acme, http.MethodGet, tc.path, nil)
			got := wantError(t, status, data, http.StatusBadRequest, "invalid_parameter")
			if got.Field != tc.field || !strings.HasPrefix(got.Message, tc.message) {
				t.Errorf("%s: field %q, message %q; want %q, %q…", tc.path, got.Field, got.Message, tc.field, tc.message)
			}
		}
	})
}

// walkLog pages through a message log with limit rows a page, checking
// that every page but the last is full and that paging back with
// prev_iterator from the last page gives the same pages, and returns the
// rows' ids, newest first.
func walkLog(e *logEnv, key, path string, limit int) []string {
	e.t.Helper()
	type page = logPageView[messageRowView]
	ids := func(p page) []string {
		var out []string
		for _, r := range p.Data {
			out = append(out, r.ID)
		}
		return out
	}
	base := path + "&limit=" + strconv.Itoa(limit)
	var fwd []page
	next := base
	for len(fwd) < 200 {
		p := get[page](e, key, next)
		fwd = append(fwd, p)
		if p.Done {
			break
		}
		if len(p.Data) != limit {
			e.t.Errorf("%s: page %d has %d rows, want %d (more follow)", base, len(fwd), len(p.Data), limit)
		}
		next = base + "&iterator=" + url.QueryEscape(*p.Iterator)
	}
	var all []string
	for _, p := range fwd {
		all = append(all, ids(p)...)
	}
	// Back from the last page: each prev_iterator gives the page before.
	for i := len(fwd) - 1; i > 0; i-- {
		if fwd[i].PrevIterator == nil {
			e.t.Errorf("%s: page %d has no prev_iterator", base, i+1)
			return all
		}
		back := get[page](e, key, base+"&iterator="+url.QueryEscape(*fwd[i].PrevIterator))
		if !slices.Equal(ids(back), ids(fwd[i-1])) {
			e.t.Errorf("%s: back from page %d: %v, want page %d: %v", base, i+1, ids(back), i, ids(fwd[i-1]))
		}
		if i-1 == 0 && back.PrevIterator != nil {
			// The first page reached going back may say newer rows could
			// follow; they must not exist.
			if more := get[page](e, key, base+"&iterator="+url.QueryEscape(*back.PrevIterator)); len(more.Data) != 0 {
				e.t.Errorf("%s: newer than the first page: %v", base, ids(more))
			}
		}
		fwd[i-1] = back // go on from the page reached going back
	}
	return all
}
