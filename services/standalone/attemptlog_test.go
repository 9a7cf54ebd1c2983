package standalone_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// scriptedReceiver answers each path with the statuses scripted for it, one
// per request, repeating the last.
type scriptedReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script map[string][]int
	from   map[string]int // requests received when the script was set
	got    map[string][]received
}

func newScriptedReceiver(t *testing.T) *scriptedReceiver {
	t.Helper()
	r := &scriptedReceiver{script: map[string][]int{}, from: map[string]int{}, got: map[string][]received{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		name := strings.TrimPrefix(req.URL.Path, "/")
		r.mu.Lock()
		status := http.StatusOK
		if s := r.script[name]; len(s) > 0 {
			status = s[min(len(r.got[name])-r.from[name], len(s)-1)]
		}
		r.got[name] = append(r.got[name], received{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, Status: status})
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "answered %d", status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// answer scripts the statuses of a path's next requests.
func (r *scriptedReceiver) answer(name string, statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.script[name] = statuses
	r.from[name] = len(r.got[name])
}

func (r *scriptedReceiver) requests(name string) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got[name]...)
}

func (r *scriptedReceiver) waitCount(t *testing.T, name string, n int) []received {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, func() error {
		if got := len(r.requests(name)); got < n {
			return fmt.Errorf("endpoint %s received %d requests, want %d", name, got, n)
		}
		return nil
	})
	return r.requests(name)
}

type apiDelivery struct {
	EndpointID    string     `json:"endpoint_id"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
}

type apiMessage struct {
	ID         string        `json:"id"`
	Payload    any           `json:"payload"`
	Deliveries []apiDelivery `json:"deliveries"`
}

type apiAttempt struct {
	ID             string `json:"id"`
	EndpointID     string `json:"endpoint_id"`
	Attempt        int    `json:"attempt"`
	Outcome        string `json:"outcome"`
	StatusCode     int    `json:"status_code"`
	State          string `json:"state"`
	ResponseBody   string `json:"response_body"`
	RequestHeaders []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"request_headers"`
}

type apiList[T any] struct {
	Data []T  `json:"data"`
	Done bool `json:"done"`
}

// deliveryState reads the state of msg's delivery to ep through the API.
func deliveryState(t *testing.T, sys *system, tn tenant, msg, ep string) (apiDelivery, error) {
	t.Helper()
	var m apiMessage
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/messages/"+msg, map[string]string{"x-api-key": tn.Key}, nil, &m); code != http.StatusOK {
		return apiDelivery{}, fmt.Errorf("GET message %s: status %d", msg, code)
	}
	for _, d := range m.Deliveries {
		if d.EndpointID == ep {
			return d, nil
		}
	}
	return apiDelivery{}, fmt.Errorf("message %s has no delivery to %s: %+v", msg, ep, m.Deliveries)
}

func waitState(t *testing.T, sys *system, tn tenant, msg, ep, state string, attempts int) apiDelivery {
	t.Helper()
	var d apiDelivery
	testenv.WaitFor(t, 30*time.Second, func() error {
		var err error
		if d, err = deliveryState(t, sys, tn, msg, ep); err != nil {
			return err
		}
		if d.State != state || d.Attempts != attempts {
			return fmt.Errorf("delivery of %s to %s is %s after %d attempts, want %s after %d", msg, ep, d.State, d.Attempts, state, attempts)
		}
		return nil
	})
	return d
}

// TestAttemptLogEndToEnd: an endpoint that answers 500 then 200 — its
// attempts appear in the REST API with their outcomes and the delivery goes
// from retrying to succeeded; a resend delivers again with the same
// webhook-id; a recover request resends a failed delivery once, however
// often it is made.
func TestAttemptLogEndToEnd(t *testing.T) {
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL(), hooks: func(c *standalone.Config) {
		// Time to see the first retry coming; the dead endpoint is
		// exhausted after three attempts.
		c.RetrySchedule = []time.Duration{0, 2 * time.Second, 200 * time.Millisecond}
	}})
	recv := newScriptedReceiver(t)
	recv.answer("flaky", http.StatusInternalServerError, http.StatusOK)
	recv.answer("dead", http.StatusServiceUnavailable)
	a := sys.createTenant(t, "tenant-a")
	b := sys.createTenant(t, "tenant-b")
	flaky := sys.createEndpoint(t, a, map[string]any{"url": recv.srv.URL + "/flaky"})
	dead := sys.createEndpoint(t, a, map[string]any{"url": recv.srv.URL + "/dead"})
	hA := map[string]string{"x-api-key": a.Key}
	start := time.Now().UTC()

	code, out := sys.publishHTTP(t, map[string]any{"tenant_id": a.ID, "event_type": "job.completed", "data": jobData("job.completed", "job_1")})
	if code != http.StatusAccepted {
		t.Fatalf("publish: %d %v", code, out)
	}
	msg := out["message_id"].(string)

	// The flaky endpoint: retrying after the 500, then succeeded.
	recv.waitCount(t, "flaky", 1)
	if d := waitState(t, sys, a, msg, flaky.ID, "retrying", 1); d.NextAttemptAt == nil {
		t.Errorf("retrying delivery without a next attempt time: %+v", d)
	}
	recv.waitCount(t, "flaky", 2)
	waitState(t, sys, a, msg, flaky.ID, "succeeded", 2)

	var attempts apiList[apiAttempt]
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+flaky.ID+"/attempts", hA, nil, &attempts); code != http.StatusOK || len(attempts.Data) != 2 {
		t.Fatalf("flaky attempts: status %d, %+v", code, attempts)
	}
	newest, oldest := attempts.Data[0], attempts.Data[1]
	if oldest.Attempt != 1 || oldest.Outcome != "http_status" || oldest.StatusCode != 500 || oldest.State != "retrying" {
		t.Errorf("first attempt = %+v, want #1 http_status 500 retrying", oldest)
	}
	if newest.Attempt != 2 || newest.Outcome != "success" || newest.StatusCode != 200 || newest.State != "succeeded" {
		t.Errorf("second attempt = %+v, want #2 success 200 succeeded", newest)
	}
	var full apiAttempt
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/attempts/"+oldest.ID, hA, nil, &full); code != http.StatusOK {
		t.Fatalf("GET attempt: %d", code)
	}
	headers := map[string]string{}
	for _, h := range full.RequestHeaders {
		headers[h.Name] = h.Value
	}
	if headers["webhook-id"] != msg || headers["webhook-signature"] != "REDACTED" || full.ResponseBody != "answered 500" {
		t.Errorf("attempt in full: headers %v, body %q; want webhook-id %s, the signature redacted, body \"answered 500\"", headers, full.ResponseBody, msg)
	}
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/attempts/"+oldest.ID, map[string]string{"x-api-key": b.Key}, nil, nil); code != http.StatusNotFound {
		t.Errorf("another tenant reading the attempt: %d, want 404", code)
	}

	// Resend: delivered again with the same webhook-id.
	var resent struct {
		ID string `json:"id"`
	}
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+flaky.ID+"/messages/"+msg+"/resend", hA, nil, &resent); code != http.StatusAccepted || resent.ID == "" {
		t.Fatalf("resend: %d %+v", code, resent)
	}
	got := recv.waitCount(t, "flaky", 3)[2]
	if id := got.Header.Get("webhook-id"); id != msg || got.Status != http.StatusOK {
		t.Errorf("resent request: webhook-id %q, answered %d; want %s, 200", id, got.Status, msg)
	}
	verify(t, flaky.Secret, got)
	waitState(t, sys, a, msg, flaky.ID, "succeeded", 3)

	// The dead endpoint is exhausted after three 503s; healed, a recover
	// request sends the failed delivery once.
	recv.waitCount(t, "dead", 3)
	waitState(t, sys, a, msg, dead.ID, "failed", 3)
	recv.answer("dead", http.StatusOK)
	body := map[string]string{"since": start.Add(-time.Minute).Format(time.RFC3339Nano)}
	var first, second struct {
		ID    string `json:"id"`
		Count int    `json:"count"`
	}
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+dead.ID+"/recover", hA, body, &first); code != http.StatusAccepted || first.Count != 1 {
		t.Fatalf("recover: %d %+v, want 202 with count 1", code, first)
	}
	got = recv.waitCount(t, "dead", 4)[3]
	if id := got.Header.Get("webhook-id"); id != msg || got.Status != http.StatusOK {
		t.Errorf("recovered request: webhook-id %q, answered %d; want %s, 200", id, got.Status, msg)
	}
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+dead.ID+"/recover", hA, body, &second); code != http.StatusAccepted || second != first {
		t.Errorf("the same recover again: %d %+v, want 202 %+v", code, second, first)
	}
	waitState(t, sys, a, msg, dead.ID, "succeeded", 4)
	settled(t, sys.js(t))
	if n := len(recv.requests("dead")); n != 4 {
		t.Errorf("dead endpoint got %d requests, want 4 (3 attempts, 1 recovered)", n)
	}
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+dead.ID+"/recover", map[string]string{"x-api-key": b.Key}, body, nil); code != http.StatusNotFound {
		t.Errorf("another tenant's recover: %d, want 404", code)
	}
}
