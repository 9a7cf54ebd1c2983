package standalone_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// TestRetryNowThroughTheAPI: an endpoint answering 500 collects its
// deliveries in the schedule (retries and put-off deliveries) with a
// back-off of hours; its receiver is fixed, and POST retry-now answers the
// exact number waiting, each of which is delivered once within seconds
// with its attempt record, while another failing endpoint's deliveries stay
// where they are. Another tenant gets 404, a disabled endpoint 409.
func TestRetryNowThroughTheAPI(t *testing.T) {
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL(), hooks: func(c *standalone.Config) {
		c.RetrySchedule = []time.Duration{0, 3 * time.Hour, 3 * time.Hour}
	}})
	recv := newScriptedReceiver(t)
	recv.answer("broken", http.StatusInternalServerError)
	recv.answer("other", http.StatusInternalServerError)
	a := sys.createTenant(t, "tenant-a")
	b := sys.createTenant(t, "tenant-b")
	broken := sys.createEndpoint(t, a, map[string]any{"url": recv.srv.URL + "/broken"})
	other := sys.createEndpoint(t, a, map[string]any{"url": recv.srv.URL + "/other"})
	hA := map[string]string{"x-api-key": a.Key}

	const n = 20
	var msgs []string
	for i := range n {
		code, out := sys.publishHTTP(t, map[string]any{"tenant_id": a.ID, "event_type": "job.completed", "data": jobData("job.completed", fmt.Sprintf("job_%d", i))})
		if code != http.StatusAccepted {
			t.Fatalf("publish: %d %v", code, out)
		}
		msgs = append(msgs, out["message_id"].(string))
	}
	// Every delivery to both endpoints waits: retrying after its first
	// attempt's 500, or put off because the endpoint was failing.
	for _, ep := range []endpoint{broken, other} {
		for _, msg := range msgs {
			testenv.WaitFor(t, 30*time.Second, func() error {
				d, err := deliveryState(t, sys, a, msg, ep.ID)
				if err != nil {
					return err
				}
				if d.State != "retrying" && d.State != "put_off" {
					return fmt.Errorf("delivery of %s to %s is %s, want retrying or put off", msg, ep.ID, d.State)
				}
				return nil
			})
		}
	}
	settled(t, sys.js(t))
	tried, triedOther := len(recv.requests("broken")), len(recv.requests("other"))
	t.Logf("before retry now: broken got %d requests, other %d, of %d deliveries each", tried, triedOther, n)

	recv.answer("broken", http.StatusOK)
	var out struct {
		Queued int `json:"queued"`
	}
	start := time.Now()
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+broken.ID+"/retry-now", hA, nil, &out); code != http.StatusOK || out.Queued != n {
		t.Fatalf("retry now: %d %+v, want 200 with queued %d", code, out, n)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		if ok := okByID(recv.requests("broken")); len(ok) < n {
			return fmt.Errorf("%d of %d messages delivered", len(ok), n)
		}
		return nil
	})
	t.Logf("%d waiting deliveries delivered %v after retry now", n, time.Since(start))
	settled(t, sys.js(t))
	ok := okByID(recv.requests("broken"))
	for _, msg := range msgs {
		if ok[msg] != 1 {
			t.Errorf("message %s answered 2xx %d times, want once", msg, ok[msg])
		}
	}
	if got := len(recv.requests("broken")); got != tried+n {
		t.Errorf("broken got %d requests, want %d before and %d after retry now", got, tried, n)
	}
	if got := len(recv.requests("other")); got != triedOther {
		t.Errorf("other got %d requests, want %d: its deliveries are not due for hours", got, triedOther)
	}
	// One attempt record per request, each delivery succeeded.
	testenv.WaitFor(t, 30*time.Second, func() error {
		var attempts apiList[apiAttempt]
		if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+broken.ID+"/attempts?limit=250", hA, nil, &attempts); code != http.StatusOK {
			return fmt.Errorf("attempts: status %d", code)
		}
		succeeded := 0
		for _, at := range attempts.Data {
			if at.State == "succeeded" {
				succeeded++
			}
		}
		if len(attempts.Data) != tried+n || succeeded != n {
			return fmt.Errorf("%d attempt records (%d succeeded), want %d (%d)", len(attempts.Data), succeeded, tried+n, n)
		}
		return nil
	})
	for _, msg := range msgs {
		if d, err := deliveryState(t, sys, a, msg, broken.ID); err != nil || d.State != "succeeded" {
			t.Errorf("delivery of %s: %+v, %v; want succeeded", msg, d, err)
		}
	}

	// Another tenant's endpoint is not found; a disabled one is refused.
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+broken.ID+"/retry-now", map[string]string{"x-api-key": b.Key}, nil, nil); code != http.StatusNotFound {
		t.Errorf("another tenant's retry now: %d, want 404", code)
	}
	if code := call(t, "PATCH", sys.svc.ConfigURL()+"/v1/endpoints/"+other.ID, hA, map[string]any{"enabled": false}, nil); code != http.StatusOK {
		t.Fatalf("disable other: %d", code)
	}
	var refusal struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+other.ID+"/retry-now", hA, nil, &refusal); code != http.StatusConflict || refusal.Error.Code != "endpoint_disabled" {
		t.Errorf("retry now of a disabled endpoint: %d %+v, want 409 endpoint_disabled", code, refusal)
	}
}

// okByID counts the requests answered 2xx per webhook-id.
func okByID(rs []received) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		if r.Status >= 200 && r.Status < 300 {
			out[r.Header.Get("webhook-id")]++
		}
	}
	return out
}
