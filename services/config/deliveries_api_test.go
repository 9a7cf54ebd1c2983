package config

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestMessageLog: one row per message with its deliveries' states, filtered
// by state, searched by message id, webhook-id and job id, paged both ways
// through 120 messages; resends show as pending; another tenant sees none
// of it.
func TestMessageLog(t *testing.T) {
	e := newLogEnv(t)
	_, acme := e.newTenant("acme")
	_, globex := e.newTenant("globex")
	ok := e.newEndpoint(acme, map[string]any{"url": "https://example.com/ok"})
	bad := e.newEndpoint(acme, map[string]any{"url": "https://example.com/bad"})
	start := time.Now().UTC().Add(-2 * time.Hour)
	var msgs []string // oldest first
	for i := range 120 {
		at := start.Add(time.Duration(i) * time.Second)
		m := e.publishEvent("acme", "job.completed", at)
		msgs = append(msgs, m)
		e.publishState(&eventv1.StateRecord{TenantId: "acme", MessageId: m, EventType: "job.completed", EndpointIds: []string{ok.ID, bad.ID},
			State: eventv1.DeliveryState_DELIVERY_STATE_PENDING, Reason: "fanned out", At: timestamppb.New(at)})
		e.publishAttempt("acme", ok.ID, m, 1, at.Add(time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		if i >= 100 { // the newest 20: bad is failing, they are put off
			e.publishState(&eventv1.StateRecord{TenantId: "acme", MessageId: m, EventType: "job.completed", EndpointIds: []string{bad.ID},
				State: eventv1.DeliveryState_DELIVERY_STATE_PUT_OFF, Reason: "endpoint failing", At: timestamppb.New(at.Add(2 * time.Second)),
				NextAttemptAt: timestamppb.New(at.Add(time.Hour))})
		} else {
			e.publishAttempt("acme", bad.ID, m, 1, at.Add(time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		}
	}
	e.indexed()
	newest := slices.Clone(msgs)
	slices.Reverse(newest)

	// Paging forward through the 120, then back with prev_iterator.
	type page = logPageView[messageRowView]
	var fwd []page
	path := "/v1/messages?limit=50"
	for range 10 {
		p := get[page](e, acme, path)
		fwd = append(fwd, p)
		if p.Done {
			break
		}
		path = "/v1/messages?limit=50&iterator=" + url.QueryEscape(*p.Iterator)
	}
	var got []string
	for _, p := range fwd {
		for _, r := range p.Data {
			got = append(got, r.ID)
		}
	}
	if len(fwd) != 3 || !slices.Equal(got, newest) {
		t.Fatalf("forward: %d pages, %d rows; want 3 pages of the 120 newest first", len(fwd), len(got))
	}
	if fwd[0].PrevIterator != nil {
		t.Errorf("first page has a prev_iterator")
	}
	back := get[page](e, acme, "/v1/messages?limit=50&iterator="+url.QueryEscape(*fwd[2].PrevIterator))
	if len(back.Data) != 50 || back.Data[0].ID != newest[50] || back.Data[49].ID != newest[99] {
		t.Errorf("back from the last page: %d rows from %s; want page 2 (rows 50–99)", len(back.Data), back.Data[0].ID)
	}
	row := fwd[0].Data[0]
	if row.State != "put_off" || row.Attempts != 1 || len(row.Deliveries) != 2 {
		t.Errorf("newest row = %+v, want put_off with 1 attempt over 2 deliveries", row)
	}
	for _, d := range row.Deliveries {
		if d.EndpointID == bad.ID && (d.State != "put_off" || d.Reason != "endpoint failing" || d.NextAttemptAt == nil) {
			t.Errorf("put-off delivery = %+v", d)
		}
	}
	if r := fwd[2].Data[19]; r.State != "succeeded" || r.Attempts != 2 {
		t.Errorf("oldest row = %+v, want succeeded after 2 attempts (one per endpoint)", r)
	}

	// Filters and searches.
	putOff := rowsOf(e, acme, "/v1/messages?state=put_off")
	if len(putOff) != 20 || putOff[0].ID != newest[0] || putOff[19].ID != newest[19] {
		t.Errorf("state=put_off: %d rows, want the 20 newest", len(putOff))
	}
	if n := len(rowsOf(e, acme, "/v1/messages?state=succeeded")); n != 120 {
		t.Errorf("state=succeeded: %d rows, want 120 (each message once)", n)
	}
	for _, q := range []string{"message_id=" + msgs[7], "webhook_id=" + msgs[7], "job_id=job_" + msgs[7]} {
		rows := pages[messageRowView](e, acme, "/v1/messages?"+q)
		if len(rows) != 1 || rows[0].ID != msgs[7] || len(rows[0].Deliveries) != 2 {
			t.Errorf("%s: %+v, want message 7 with its 2 deliveries", q, rows)
		}
	}
	if rows := pages[messageRowView](e, acme, "/v1/messages?job_id=job_nothing"); len(rows) != 0 {
		t.Errorf("unknown job id: %d rows", len(rows))
	}
	held := pages[deliveryView](e, acme, "/v1/endpoints/"+bad.ID+"/deliveries?state=held")
	if len(held) != 20 || held[0].MessageID != newest[0] || held[0].NextAttemptAt == nil {
		t.Errorf("bad's held deliveries: %d, want the 20 put off with their next attempt", len(held))
	}
	if rows := pages[messageRowView](e, acme, "/v1/endpoints/"+ok.ID+"/message-log?state=held"); len(rows) != 0 {
		t.Errorf("ok's held messages: %d, want 0", len(rows))
	}
	if rows := pages[messageRowView](e, acme, "/v1/endpoints/"+bad.ID+"/message-log?state=put_off"); len(rows) != 20 || len(rows[0].Deliveries) != 1 {
		t.Errorf("bad's put-off messages: %d, want 20 with its delivery only", len(rows))
	}

	// A resend shows as pending, "resent".
	status, data := e.api(acme, http.MethodPost, "/v1/endpoints/"+bad.ID+"/messages/"+msgs[110]+"/resend", nil)
	if status != http.StatusAccepted {
		t.Fatalf("resend = %d: %s", status, data)
	}
	e.states++ // the resend's state record
	e.indexed()
	d := get[messageDetailView](e, acme, "/v1/messages/"+msgs[110])
	for _, dv := range d.Deliveries {
		if dv.EndpointID == bad.ID && (dv.State != "pending" || dv.Reason != "resent") {
			t.Errorf("resent delivery = %+v, want pending, resent", dv)
		}
	}

	// Bad input, and another tenant.
	if status, data := e.api(acme, http.MethodGet, "/v1/messages?state=lost", nil); status != http.StatusUnprocessableEntity && status != http.StatusBadRequest {
		t.Errorf("state=lost = %d: %s, want a refusal", status, data)
	}
	if rows := rowsOf(e, globex, "/v1/messages?state=put_off"); len(rows) != 0 {
		t.Errorf("globex sees %d of acme's rows", len(rows))
	}
	if rows := pages[messageRowView](e, globex, "/v1/messages?message_id="+msgs[7]); len(rows) != 0 {
		t.Errorf("globex finds acme's message")
	}
	if status, _ := e.api(globex, http.MethodGet, "/v1/endpoints/"+bad.ID+"/deliveries", nil); status != http.StatusNotFound {
		t.Errorf("globex reading acme's endpoint deliveries = %d, want 404", status)
	}

	// A test send to a disabled endpoint is refused in plain words.
	if status, data := e.api(acme, http.MethodPatch, "/v1/endpoints/"+bad.ID, map[string]any{"enabled": false}); status != http.StatusOK {
		t.Fatalf("disable = %d: %s", status, data)
	}
	status, data = e.api(acme, http.MethodPost, "/v1/endpoints/"+bad.ID+"/test", map[string]any{})
	if status != http.StatusConflict || !strings.Contains(string(data), "endpoint_disabled") || !strings.Contains(string(data), "Enable the endpoint") {
		t.Errorf("test send to a disabled endpoint = %d: %s, want 409 endpoint_disabled with what to do", status, data)
	}
}

// rowsOf follows the iterators of a message-log list in pages of 7 (the
// tenant's lists by state can have short pages: a message with deliveries to
// several endpoints is one row) and fails on a message listed twice.
func rowsOf(e *logEnv, key, path string) []messageRowView {
	e.t.Helper()
	var out []messageRowView
	seen := map[string]bool{}
	next := path + "&limit=7"
	for range 200 {
		p := get[logPageView[messageRowView]](e, key, next)
		for _, r := range p.Data {
			if seen[r.ID] {
				e.t.Errorf("%s lists %s twice", path, r.ID)
			}
			seen[r.ID] = true
		}
		out = append(out, p.Data...)
		if p.Done {
			return out
		}
		next = path + "&limit=7&iterator=" + url.QueryEscape(*p.Iterator)
	}
	e.t.Fatalf("%s: endless pages", path)
	return nil
}
