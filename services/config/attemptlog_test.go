package config

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
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

// logEnv is a config service with the streams the attempt log indexes, and
// helpers that publish into them the way ingest and delivery do.
type logEnv struct {
	*harness
	js       jetstream.JetStream
	events   uint64 // sequences published
	attempts uint64
	states   uint64
	payloads map[string]string
	types    map[string]string // message id → event type, for its attempts
}

const testPartitions = 2

func newLogEnv(t *testing.T) *logEnv {
	t.Helper()
	h := startService(t)
	e := &logEnv{harness: h, js: h.nats.JetStream(t), payloads: map[string]string{}, types: map[string]string{}}
	ctx := context.Background()
	o := streams.Options{Partitions: testPartitions}
	if err := streams.EnsureAll(ctx, e.js, o, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *logEnv) publishEvent(tenant, typ string, at time.Time) string {
	e.t.Helper()
	id := ids.NewAt(ids.Message, at)
	payload := fmt.Sprintf(`{"type":%q,"timestamp":%q,"data":{"job_id":"job_%s"}}`, typ, at.Format(time.RFC3339), id)
	ev := &eventv1.Event{MessageId: id, TenantId: tenant, EventType: typ, Timestamp: timestamppb.New(at), AcceptedAt: timestamppb.New(at), Payload: []byte(payload)}
	data, err := proto.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.Publish(context.Background(), streams.EventSubject(tenant, typ), data, jetstream.WithMsgID(id)); err != nil {
		e.t.Fatal(err)
	}
	e.events++
	e.payloads[id] = payload
	e.types[id] = typ
	return id
}

func (e *logEnv) publishAttempt(tenant, ep, msg string, n uint32, started time.Time, outcome eventv1.Outcome, state eventv1.DeliveryState) *eventv1.Attempt {
	e.t.Helper()
	typ := e.types[msg]
	if typ == "" {
		typ = "job.completed"
	}
	a := &eventv1.Attempt{
		Id: ids.NewAt(ids.Attempt, started.Add(20*time.Millisecond)), MessageId: msg, TenantId: tenant, EndpointId: ep,
		EventType: typ, Attempt: n, Url: "https://example.com/hook", StartedAt: timestamppb.New(started), DurationUs: 20000,
		Outcome: outcome, State: state, TraceId: "0af7651916cd43dd8448eb211c80319c",
		RequestHeaders:  []*eventv1.Header{{Name: "webhook-id", Value: msg}, {Name: "webhook-signature", Value: "REDACTED"}},
		ResponseHeaders: []*eventv1.Header{{Name: "content-type", Value: "text/plain"}},
	}
	switch outcome {
	case eventv1.Outcome_OUTCOME_SUCCESS:
		a.StatusCode, a.ResponseBody = 200, []byte("ok")
	case eventv1.Outcome_OUTCOME_HTTP_STATUS:
		a.StatusCode, a.ResponseBody = 500, []byte("boom")
	default:
		a.Error = "dial tcp: connection refused"
	}
	if state == eventv1.DeliveryState_DELIVERY_STATE_RETRYING {
		a.NextAttemptAt = timestamppb.New(started.Add(5 * time.Second))
	}
	data, err := proto.Marshal(a)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.Publish(context.Background(), streams.AttemptSubject(tenant, ep), data, jetstream.WithMsgID(a.Id)); err != nil {
		e.t.Fatal(err)
	}
	e.attempts++
	return a
}

// publishState stores a state record in STATES as fanout or delivery do.
func (e *logEnv) publishState(r *eventv1.StateRecord) {
	e.t.Helper()
	if r.Id == "" {
		r.Id = ids.New(ids.State)
	}
	data, err := proto.Marshal(r)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.Publish(context.Background(), streams.StateSubject(r.GetTenantId(), streams.StateSourceFanout), data, jetstream.WithMsgID(r.Id)); err != nil {
		e.t.Fatal(err)
	}
	e.states++
}

// indexed waits until the service's attempt log holds everything published.
func (e *logEnv) indexed() {
	e.t.Helper()
	testenv.WaitFor(e.t, 10*time.Second, func() error {
		ev, _ := e.svc.alog.Position(streams.Events)
		at, _ := e.svc.alog.Position(streams.Attempts)
		st, _ := e.svc.alog.Position(streams.States)
		if ev < e.events || at < e.attempts || st < e.states {
			return fmt.Errorf("attempt log at EVENTS %d, ATTEMPTS %d, STATES %d; want %d, %d, %d", ev, at, st, e.events, e.attempts, e.states)
		}
		return nil
	})
}

// get sends a GET and decodes a 200 answer into a T.
func get[T any](e *logEnv, key, path string) T {
	e.t.Helper()
	status, data := e.api(key, http.MethodGet, path, nil)
	if status != http.StatusOK {
		e.t.Fatalf("GET %s = %d: %s", path, status, data)
	}
	return decode[T](e.t, data)
}

// pages follows the iterators of a list and returns every item.
func pages[T any](e *logEnv, key, path string) []T {
	e.t.Helper()
	var out []T
	sep := "?"
	if bytes.ContainsRune([]byte(path), '?') {
		sep = "&"
	}
	next := path + sep + "limit=2"
	for range 100 {
		p := get[listPage[T]](e, key, next)
		out = append(out, p.Data...)
		if p.Done {
			if p.Iterator != nil {
				e.t.Errorf("last page of %s has an iterator", path)
			}
			return out
		}
		if p.Iterator == nil || len(p.Data) != 2 {
			e.t.Fatalf("page of %s: %d items, iterator %v, not done", path, len(p.Data), p.Iterator)
		}
		next = path + sep + "limit=2&iterator=" + url.QueryEscape(*p.Iterator)
	}
	e.t.Fatalf("%s: endless pages", path)
	return nil
}

func ids2[T any](items []T, id func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = id(it)
	}
	return out
}

func TestAttemptLogAPI(t *testing.T) {
	e := newLogEnv(t)
	_, acme := e.newTenant("acme")
	_, globex := e.newTenant("globex")
	ep1 := e.newEndpoint(acme, map[string]any{"url": "https://example.com/1"})
	ep2 := e.newEndpoint(acme, map[string]any{"url": "https://example.com/2", "event_types": []string{"job.completed"}})
	ep3 := e.newEndpoint(acme, map[string]any{"url": "https://example.com/3", "event_types": []string{"job.failed"}})
	now := time.Now().UTC()

	// Five acme messages, ten minutes apart; every delivery to ep1 fails
	// once, then succeeds (the newest one has not been retried yet); ep2
	// gets the job.completed ones at once.
	var msgs []string
	var failures []*eventv1.Attempt
	for i := range 5 {
		at := now.Add(-time.Duration(50-10*i) * time.Minute)
		typ := "job.completed"
		if i%2 == 1 {
			typ = "job.failed"
		}
		m := e.publishEvent("acme", typ, at)
		msgs = append(msgs, m)
		failures = append(failures, e.publishAttempt("acme", ep1.ID, m, 1, at.Add(time.Second), eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_RETRYING))
		if i < 4 {
			e.publishAttempt("acme", ep1.ID, m, 2, at.Add(10*time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		}
		if typ == "job.completed" {
			e.publishAttempt("acme", ep2.ID, m, 1, at.Add(2*time.Second), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		}
	}
	gm := e.publishEvent("globex", "job.completed", now.Add(-time.Minute))
	e.indexed()
	newest := slices.Clone(msgs)
	slices.Reverse(newest)

	t.Run("messages, newest first, paginated and filtered", func(t *testing.T) {
		got := pages[messageView](e, acme, "/v1/messages")
		if ids := ids2(got, func(m messageView) string { return m.ID }); !slices.Equal(ids, newest) {
			t.Errorf("messages = %v, want %v", ids, newest)
		}
		if got[0].EventType != "job.completed" || got[0].CreatedAt.IsZero() || got[0].Timestamp.IsZero() {
			t.Errorf("message view = %+v", got[0])
		}
		failed := pages[messageView](e, acme, "/v1/messages?event_type=job.failed")
		if ids := ids2(failed, func(m messageView) string { return m.ID }); !slices.Equal(ids, []string{msgs[3], msgs[1]}) {
			t.Errorf("job.failed messages = %v, want %v", ids, []string{msgs[3], msgs[1]})
		}
		after, before := now.Add(-45*time.Minute).Format(time.RFC3339Nano), now.Add(-15*time.Minute).Format(time.RFC3339Nano)
		ranged := pages[messageView](e, acme, "/v1/messages?after="+url.QueryEscape(after)+"&before="+url.QueryEscape(before))
		if ids := ids2(ranged, func(m messageView) string { return m.ID }); !slices.Equal(ids, []string{msgs[3], msgs[2], msgs[1]}) {
			t.Errorf("messages between -45 and -15 min = %v", ids)
		}
		if g := pages[messageView](e, globex, "/v1/messages"); len(g) != 1 || g[0].ID != gm {
			t.Errorf("globex messages = %+v, want only %s", g, gm)
		}
	})

	t.Run("message with its deliveries", func(t *testing.T) {
		m := get[messageDetailView](e, acme, "/v1/messages/"+msgs[4])
		if m.ID != msgs[4] || !jsonEqual(m.Payload, e.payloads[msgs[4]]) {
			t.Errorf("message = %s %s, want %s with payload %s", m.ID, m.Payload, msgs[4], e.payloads[msgs[4]])
		}
		byEP := map[string]deliveryView{}
		for _, d := range m.Deliveries {
			byEP[d.EndpointID] = d
		}
		if d := byEP[ep1.ID]; d.State != "retrying" || d.Attempts != 1 || d.NextAttemptAt == nil || d.LastStatusCode != 500 || d.LastOutcome != "http_status" {
			t.Errorf("delivery to ep1 = %+v, want retrying after one 500 with a next attempt time", d)
		}
		if d := byEP[ep2.ID]; d.State != "succeeded" || d.Attempts != 1 {
			t.Errorf("delivery to ep2 = %+v, want succeeded", d)
		}
		if len(m.Deliveries) != 2 {
			t.Errorf("deliveries = %+v, want ep1 and ep2 (ep3 is newer than the message)", m.Deliveries)
		}

		e.publishAttempt("acme", ep1.ID, msgs[4], 2, now.Add(-5*time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		e.indexed()
		m = get[messageDetailView](e, acme, "/v1/messages/"+msgs[4])
		for _, d := range m.Deliveries {
			if d.EndpointID == ep1.ID && (d.State != "succeeded" || d.Attempts != 2 || d.NextAttemptAt != nil) {
				t.Errorf("delivery to ep1 after its retry = %+v, want succeeded after 2 attempts", d)
			}
		}

		// Fanout's record of what it stored makes the deliveries pending.
		freshAt := time.Now()
		fresh := e.publishEvent("acme", "job.failed", freshAt)
		e.publishState(&eventv1.StateRecord{TenantId: "acme", MessageId: fresh, EventType: "job.failed", EndpointIds: []string{ep1.ID, ep3.ID},
			State: eventv1.DeliveryState_DELIVERY_STATE_PENDING, Reason: "fanned out", At: timestamppb.New(freshAt)})
		e.indexed()
		m = get[messageDetailView](e, acme, "/v1/messages/"+fresh)
		states := map[string]string{}
		for _, d := range m.Deliveries {
			states[d.EndpointID] = d.State
		}
		if want := map[string]string{ep1.ID: "pending", ep3.ID: "pending"}; !mapsEqual(states, want) {
			t.Errorf("deliveries of a fresh job.failed message = %v, want %v (ep2 takes job.completed only)", states, want)
		}
	})

	t.Run("attempts", func(t *testing.T) {
		ma := pages[attemptView](e, acme, "/v1/messages/"+msgs[0]+"/attempts")
		if len(ma) != 3 || ma[0].EndpointID != ep1.ID || ma[0].Attempt != 2 || ma[2].Attempt != 1 || ma[2].Outcome != "http_status" {
			t.Errorf("attempts of msg 0 = %+v, want ep1 #2, ep2 #1, ep1 #1", ma)
		}
		all := pages[attemptView](e, acme, "/v1/endpoints/"+ep1.ID+"/attempts")
		if len(all) != 10 {
			t.Errorf("ep1 attempts = %d, want 10", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].Timestamp.After(all[i-1].Timestamp) {
				t.Errorf("ep1 attempts not newest first at %d", i)
			}
		}
		fails := pages[attemptView](e, acme, "/v1/endpoints/"+ep1.ID+"/attempts?outcome=http_status")
		if got := ids2(fails, func(a attemptView) string { return a.ID }); len(got) != 5 || got[0] != failures[4].Id || fails[0].State != "retrying" || fails[0].NextAttemptAt == nil {
			t.Errorf("ep1 failures = %+v, want 5 retrying, newest first", fails)
		}
		before := now.Add(-35 * time.Minute).Format(time.RFC3339)
		old := pages[attemptView](e, acme, "/v1/endpoints/"+ep1.ID+"/attempts?outcome=http_status&before="+url.QueryEscape(before))
		if len(old) != 2 || old[0].ID != failures[1].Id {
			t.Errorf("ep1 failures before -35 min = %+v, want the 2 oldest", old)
		}
		dl := pages[deliveryView](e, acme, "/v1/endpoints/"+ep1.ID+"/messages")
		if len(dl) != 6 || dl[0].State != "pending" || dl[1].MessageID != msgs[4] || dl[5].State != "succeeded" {
			t.Errorf("ep1 deliveries = %+v, want the pending job.failed message, then 5 newest first", dl)
		}
		if held := pages[deliveryView](e, acme, "/v1/endpoints/"+ep1.ID+"/deliveries?state=held"); len(held) != 1 || held[0].State != "pending" || held[0].Reason != "fanned out" {
			t.Errorf("ep1 held deliveries = %+v, want the one pending", held)
		}
		if done := pages[deliveryView](e, acme, "/v1/endpoints/"+ep1.ID+"/deliveries?state=succeeded"); len(done) != 5 {
			t.Errorf("ep1 succeeded deliveries = %d, want 5", len(done))
		}

		full := get[attemptDetailView](e, acme, "/v1/attempts/"+failures[2].Id)
		if full.ID != failures[2].Id || full.URL != "https://example.com/hook" || full.ResponseBody != "boom" || full.ResponseBodyEncoding != "text" ||
			full.StatusCode != 500 || full.TraceID == "" || len(full.RequestHeaders) != 2 || full.RequestHeaders[1].Value != "REDACTED" || full.DurationMS != 20 {
			t.Errorf("attempt in full = %+v", full)
		}
	})

	t.Run("stats", func(t *testing.T) {
		st := get[statsView](e, acme, "/v1/endpoints/"+ep1.ID+"/stats")
		if len(st.Hours) != 24 || st.Success != 5 || st.Failure != 5 {
			t.Errorf("ep1 stats = %d hours, %d successes, %d failures; want 24, 5, 5", len(st.Hours), st.Success, st.Failure)
		}
		if last := st.Hours[23].Hour; !last.Equal(time.Now().UTC().Truncate(time.Hour)) {
			t.Errorf("last hour = %v, want the current one", last)
		}
		week := get[statsView](e, acme, "/v1/endpoints/"+ep1.ID+"/stats?hours=168")
		if len(week.Hours) != 168 || week.Success != 5 || week.Failure != 5 || !week.Hours[167].Hour.Equal(st.Hours[23].Hour) ||
			!week.Hours[0].Hour.Equal(st.Hours[23].Hour.Add(-167*time.Hour)) {
			t.Errorf("ep1 stats of 7 days = %d hours (%v … %v), %d successes, %d failures; want 168 hours to the current one, 5, 5",
				len(week.Hours), week.Hours[0].Hour, week.Hours[len(week.Hours)-1].Hour, week.Success, week.Failure)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			path   string
			status int
			code   string
		}{
			{"/v1/endpoints/" + ep1.ID + "/attempts?outcome=teapot", 422, "validation_failed"},
			{"/v1/endpoints/" + ep1.ID + "/stats?hours=0", 422, "validation_failed"},
			{"/v1/endpoints/" + ep1.ID + "/stats?hours=169", 422, "validation_failed"},
			{"/v1/endpoints/" + ep1.ID + "/stats?hours=1.5", 422, "validation_failed"},
			{"/v1/endpoints/" + ep1.ID + "/attempts?after=yesterday", 400, "invalid_parameter"},
			{"/v1/messages?after=2026-01-02T00:00:00Z&before=2026-01-01T00:00:00Z", 400, "invalid_parameter"},
			{"/v1/messages?iterator=bm90LWFuLWl0ZXJhdG9y", 400, "invalid_iterator"},
			{"/v1/messages?limit=0", 422, "validation_failed"},
			{"/v1/messages/msg_01HZX3Q6M0V8TB5R3K2J9N4W7C", 404, "not_found"},
			{"/v1/messages/nope/attempts", 404, "not_found"},
			{"/v1/attempts/atmpt_01HZX3Q6M0V8TB5R3K2J9N4W7C", 404, "not_found"},
			{"/v1/endpoints/ep_01HZX3Q6M0V8TB5R3K2J9N4W7C/attempts", 404, "not_found"},
		} {
			status, data := e.api(acme, http.MethodGet, tc.path, nil)
			wantError(t, status, data, tc.status, tc.code)
		}
		status, data := e.api("", http.MethodGet, "/v1/messages", nil)
		wantError(t, status, data, 401, "unauthorized")
	})

	t.Run("another tenant sees nothing: 404", func(t *testing.T) {
		for _, p := range []string{
			"/v1/messages/" + msgs[0],
			"/v1/messages/" + msgs[0] + "/attempts",
			"/v1/attempts/" + failures[0].Id,
			"/v1/endpoints/" + ep1.ID + "/attempts",
			"/v1/endpoints/" + ep1.ID + "/messages",
			"/v1/endpoints/" + ep1.ID + "/stats",
		} {
			status, data := e.api(globex, http.MethodGet, p, nil)
			wantError(t, status, data, http.StatusNotFound, "not_found")
		}
		for _, p := range []string{"/v1/endpoints/" + ep1.ID + "/messages/" + msgs[0] + "/resend", "/v1/endpoints/" + ep1.ID + "/recover"} {
			status, data := e.api(globex, http.MethodPost, p, map[string]string{"since": now.Add(-time.Hour).Format(time.RFC3339)})
			wantError(t, status, data, http.StatusNotFound, "not_found")
		}
	})

	t.Run("a restart resumes without duplicating", func(t *testing.T) {
		before := pages[attemptView](e, acme, "/v1/endpoints/"+ep1.ID+"/attempts")
		beforeStats := get[statsView](e, acme, "/v1/endpoints/"+ep1.ID+"/stats")
		e.stop()
		e.start()
		e.indexed()
		if after := pages[attemptView](e, acme, "/v1/endpoints/"+ep1.ID+"/attempts"); len(after) != len(before) {
			t.Errorf("ep1 attempts after a restart = %d, want %d", len(after), len(before))
		}
		if st := get[statsView](e, acme, "/v1/endpoints/"+ep1.ID+"/stats"); st.Success != beforeStats.Success || st.Failure != beforeStats.Failure {
			t.Errorf("ep1 stats after a restart = %d/%d, want %d/%d", st.Success, st.Failure, beforeStats.Success, beforeStats.Failure)
		}
	})
}

func jsonEqual(got json.RawMessage, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// deliveries returns the Delivery messages in DELIVERIES (nobody consumes
// them in these tests) and their Nats-Msg-Id.
func (e *logEnv) deliveries() ([]*eventv1.Delivery, []string) {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, streams.Deliveries)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*eventv1.Delivery
	var msgIDs []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatalf("get delivery %d: %v", seq, err)
		}
		d := &eventv1.Delivery{}
		if err := proto.Unmarshal(raw.Data, d); err != nil {
			e.t.Fatal(err)
		}
		if want := streams.DeliverySubject(d.EndpointId, testPartitions); raw.Subject != want {
			e.t.Errorf("delivery stored on %s, want %s", raw.Subject, want)
		}
		out = append(out, d)
		msgIDs = append(msgIDs, raw.Header.Get(jetstream.MsgIDHeader))
	}
	return out, msgIDs
}

func TestResendPublishesOneDelivery(t *testing.T) {
	e := newLogEnv(t)
	_, acme := e.newTenant("acme")
	ep := e.newEndpoint(acme, map[string]any{"url": "https://example.com/1"})
	now := time.Now().UTC()
	m := e.publishEvent("acme", "job.completed", now.Add(-time.Minute))
	e.publishAttempt("acme", ep.ID, m, 1, now.Add(-time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
	e.indexed()

	path := "/v1/endpoints/" + ep.ID + "/messages/" + m + "/resend"
	status, data := e.api(acme, http.MethodPost, path, nil)
	if status != http.StatusAccepted {
		t.Fatalf("resend = %d: %s", status, data)
	}
	r := decode[resendView](t, data)
	ds, natsIDs := e.deliveries()
	if len(ds) != 1 {
		t.Fatalf("DELIVERIES holds %d deliveries, want 1", len(ds))
	}
	d := ds[0]
	if d.ResendId != r.ID || d.MessageId != m || d.EndpointId != ep.ID || d.TenantId != "acme" || d.EventType != "job.completed" ||
		string(d.Payload) != e.payloads[m] || d.EventSequence != 1 || d.Attempt != 0 || d.AcceptedAt == nil {
		t.Errorf("delivery = %v, want a resend %s of %s to %s with the event's payload and sequence", d, r.ID, m, ep.ID)
	}
	if want := m + "." + ep.ID + "." + r.ID; natsIDs[0] != want {
		t.Errorf("Nats-Msg-Id = %q, want %q", natsIDs[0], want)
	}

	// Each resend request sends once more.
	status, data = e.api(acme, http.MethodPost, path, nil)
	if r2 := decode[resendView](t, data); status != http.StatusAccepted || r2.ID == r.ID {
		t.Errorf("second resend = %d %+v, want 202 with a new id", status, r2)
	}
	if ds, _ := e.deliveries(); len(ds) != 2 {
		t.Errorf("DELIVERIES holds %d deliveries after two resends, want 2", len(ds))
	}

	status, data = e.api(acme, http.MethodPost, "/v1/endpoints/"+ep.ID+"/messages/msg_01HZX3Q6M0V8TB5R3K2J9N4W7C/resend", nil)
	wantError(t, status, data, http.StatusNotFound, "not_found")
	if status, data := e.api(acme, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"enabled": false}); status != http.StatusOK {
		t.Fatalf("disable endpoint: %d %s", status, data)
	}
	status, data = e.api(acme, http.MethodPost, path, nil)
	wantError(t, status, data, http.StatusConflict, "endpoint_disabled")
}

func TestRecoverIsBoundedAndIdempotent(t *testing.T) {
	e := newLogEnv(t)
	_, acme := e.newTenant("acme")
	ep := e.newEndpoint(acme, map[string]any{"url": "https://example.com/1"})
	other := e.newEndpoint(acme, map[string]any{"url": "https://example.com/2"})
	now := time.Now().UTC()
	failed := func(at time.Time, state eventv1.DeliveryState) string {
		m := e.publishEvent("acme", "job.completed", at)
		e.publishAttempt("acme", ep.ID, m, 1, at, eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
		e.publishAttempt("acme", ep.ID, m, 2, at.Add(time.Minute), eventv1.Outcome_OUTCOME_CONNECTION, state)
		return m
	}
	older := failed(now.Add(-90*time.Minute), eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED)
	want := []string{
		failed(now.Add(-50*time.Minute), eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED),
		failed(now.Add(-40*time.Minute), eventv1.DeliveryState_DELIVERY_STATE_DROPPED),
		failed(now.Add(-30*time.Minute), eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED),
	}
	ok := e.publishEvent("acme", "job.completed", now.Add(-20*time.Minute))
	e.publishAttempt("acme", ep.ID, ok, 1, now.Add(-20*time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
	retrying := e.publishEvent("acme", "job.completed", now.Add(-10*time.Minute))
	e.publishAttempt("acme", ep.ID, retrying, 1, now.Add(-10*time.Minute), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
	elsewhere := e.publishEvent("acme", "job.completed", now.Add(-10*time.Minute))
	e.publishAttempt("acme", other.ID, elsewhere, 8, now.Add(-10*time.Minute), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED)
	e.indexed()

	recoverPath := "/v1/endpoints/" + ep.ID + "/recover"
	body := map[string]string{"since": now.Add(-time.Hour).Format(time.RFC3339Nano)}
	status, data := e.api(acme, http.MethodPost, recoverPath, body)
	if status != http.StatusAccepted {
		t.Fatalf("recover = %d: %s", status, data)
	}
	first := decode[recoverView](t, data)
	if first.Count != 3 || first.More || first.ID == "" {
		t.Errorf("recover = %+v, want 3 deliveries", first)
	}
	ds, _ := e.deliveries()
	var sent []string
	for _, d := range ds {
		sent = append(sent, d.MessageId)
		if d.ResendId != first.ID || d.EndpointId != ep.ID {
			t.Errorf("recovered delivery %v, want resend id %s to %s", d, first.ID, ep.ID)
		}
	}
	slices.Sort(sent)
	wantSorted := slices.Clone(want)
	slices.Sort(wantSorted)
	if !slices.Equal(sent, wantSorted) {
		t.Errorf("recovered %v, want %v (failed and dropped since the hour; not the succeeded, the retrying, the older or the other endpoint's)", sent, wantSorted)
	}

	// The same request again: the first one's answer, nothing sent.
	status, data = e.api(acme, http.MethodPost, recoverPath, body)
	if again := decode[recoverView](t, data); status != http.StatusAccepted || again != first {
		t.Errorf("the same recover again = %d %+v, want 202 %+v", status, again, first)
	}
	if ds, _ := e.deliveries(); len(ds) != 3 {
		t.Errorf("DELIVERIES holds %d deliveries after the same recover twice, want 3", len(ds))
	}

	// An overlapping request sends only what the first did not.
	status, data = e.api(acme, http.MethodPost, recoverPath, map[string]string{"since": now.Add(-2 * time.Hour).Format(time.RFC3339Nano), "until": now.Add(time.Minute).Format(time.RFC3339Nano)})
	wider := decode[recoverView](t, data)
	if status != http.StatusAccepted || wider.Count != 1 || wider.ID == first.ID {
		t.Errorf("wider recover = %d %+v, want 1 delivery (%s) under a new id", status, wider, older)
	}
	if ds, _ := e.deliveries(); len(ds) != 4 || ds[3].MessageId != older {
		t.Errorf("DELIVERIES holds %d deliveries, want 4, the last of %s", len(ds), older)
	}

	for _, tc := range []struct {
		body any
		code int
		err  string
	}{
		{map[string]string{}, 422, "validation_failed"},
		{map[string]string{"since": "an hour ago"}, 422, "validation_failed"},
		{map[string]string{"since": now.Add(-31 * 24 * time.Hour).Format(time.RFC3339)}, 422, "validation_failed"},
		{map[string]string{"since": now.Format(time.RFC3339), "until": now.Add(-time.Hour).Format(time.RFC3339)}, 422, "validation_failed"},
		{`{"since":`, 400, "invalid_json"},
		{map[string]string{"since": now.Format(time.RFC3339), "extra": "x"}, 400, "unknown_field"},
	} {
		status, data := e.api(acme, http.MethodPost, recoverPath, tc.body)
		wantError(t, status, data, tc.code, tc.err)
	}
	if status, data := e.api(acme, http.MethodPost, "/v1/endpoints/ep_01HZX3Q6M0V8TB5R3K2J9N4W7C/recover", body); status != http.StatusNotFound {
		t.Errorf("recover of an unknown endpoint = %d %s, want 404", status, data)
	}
}

// TestRecoverIncludesRetrying recovers N failed and M still-retrying
// deliveries on real NATS: without include_retrying a request queues the N,
// with it (a different request) also the M, the same request again queues
// nothing, and every queued delivery shows as pending, "recovered".
func TestRecoverIncludesRetrying(t *testing.T) {
	const n, m = 2, 3
	e := newLogEnv(t)
	_, acme := e.newTenant("acme")
	now := time.Now().UTC()
	// seed gives ep n failed (exhausted, dropped) and m retrying deliveries
	// within the hour, one retrying twice, plus a succeeded one and an older
	// retrying one, neither of which is recovered.
	seed := func(ep string) {
		for i, st := range []eventv1.DeliveryState{eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED, eventv1.DeliveryState_DELIVERY_STATE_DROPPED} {
			at := now.Add(-time.Duration(50-i) * time.Minute)
			msg := e.publishEvent("acme", "job.completed", at)
			e.publishAttempt("acme", ep, msg, 1, at, eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
			e.publishAttempt("acme", ep, msg, 2, at.Add(time.Minute), eventv1.Outcome_OUTCOME_CONNECTION, st)
		}
		for i := range m {
			at := now.Add(-time.Duration(40-i) * time.Minute)
			msg := e.publishEvent("acme", "job.completed", at)
			e.publishAttempt("acme", ep, msg, 1, at, eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
			if i == 0 {
				e.publishAttempt("acme", ep, msg, 2, at.Add(time.Minute), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
			}
		}
		ok := e.publishEvent("acme", "job.completed", now.Add(-20*time.Minute))
		e.publishAttempt("acme", ep, ok, 1, now.Add(-20*time.Minute), eventv1.Outcome_OUTCOME_SUCCESS, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED)
		old := e.publishEvent("acme", "job.completed", now.Add(-90*time.Minute))
		e.publishAttempt("acme", ep, old, 1, now.Add(-90*time.Minute), eventv1.Outcome_OUTCOME_TIMEOUT, eventv1.DeliveryState_DELIVERY_STATE_RETRYING)
	}
	epA := e.newEndpoint(acme, map[string]any{"url": "https://example.com/a"})
	epB := e.newEndpoint(acme, map[string]any{"url": "https://example.com/b"})
	seed(epA.ID)
	seed(epB.ID)
	e.indexed()

	since := now.Add(-time.Hour).Format(time.RFC3339Nano)
	recoverOf := func(ep string, body map[string]any) recoverView {
		t.Helper()
		status, data := e.api(acme, http.MethodPost, "/v1/endpoints/"+ep+"/recover", body)
		if status != http.StatusAccepted {
			t.Fatalf("recover %v = %d: %s", body, status, data)
		}
		return decode[recoverView](t, data)
	}
	queued := func(want int) {
		t.Helper()
		if ds, _ := e.deliveries(); len(ds) != want {
			t.Fatalf("DELIVERIES holds %d deliveries, want %d", len(ds), want)
		}
	}

	plain := recoverOf(epA.ID, map[string]any{"since": since})
	if plain.Count != n || plain.More {
		t.Errorf("recover without include_retrying = %+v, want %d", plain, n)
	}
	queued(n)
	withRetrying := recoverOf(epA.ID, map[string]any{"since": since, "include_retrying": true})
	if withRetrying.Count != m || withRetrying.ID == plain.ID {
		t.Errorf("recover with include_retrying after it = %+v, want %d (the failed ones sent already) under a new id", withRetrying, m)
	}
	queued(n + m)
	if again := recoverOf(epA.ID, map[string]any{"since": since, "include_retrying": true}); again != withRetrying {
		t.Errorf("the same recover again = %+v, want %+v", again, withRetrying)
	}
	if again := recoverOf(epA.ID, map[string]any{"since": since, "include_retrying": false}); again != plain {
		t.Errorf("the request without the flag again = %+v, want %+v", again, plain)
	}
	queued(n + m)
	both := recoverOf(epB.ID, map[string]any{"since": since, "include_retrying": true})
	if both.Count != n+m {
		t.Errorf("recover with include_retrying = %+v, want %d", both, n+m)
	}
	queued(2 * (n + m))
	ds, _ := e.deliveries()
	for _, d := range ds[2*n+m:] {
		if d.EndpointId != epB.ID || d.ResendId != both.ID {
			t.Errorf("delivery %v, want one to %s with resend id %s", d, epB.ID, both.ID)
		}
	}

	// Each queued delivery has its pending state record.
	e.states += 2 * (n + m)
	e.indexed()
	for _, ep := range []string{epA.ID, epB.ID} {
		pending := pages[deliveryView](e, acme, "/v1/endpoints/"+ep+"/deliveries?state=pending")
		if len(pending) != n+m {
			t.Errorf("%s: %d pending deliveries, want %d", ep, len(pending), n+m)
		}
		for _, dv := range pending {
			if dv.Reason != "recovered" {
				t.Errorf("%s: pending delivery %+v, want reason recovered", ep, dv)
			}
		}
		if retrying := pages[deliveryView](e, acme, "/v1/endpoints/"+ep+"/deliveries?state=retrying"); len(retrying) != 1 {
			t.Errorf("%s: %d retrying deliveries, want 1 (the one before since)", ep, len(retrying))
		}
	}
	if status, data := e.api(acme, http.MethodPost, "/v1/endpoints/"+epA.ID+"/recover", map[string]any{"since": since, "include_retrying": "yes"}); status != http.StatusBadRequest && status != http.StatusUnprocessableEntity {
		t.Errorf("include_retrying \"yes\" = %d %s, want a refusal", status, data)
	}
}
