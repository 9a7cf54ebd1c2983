package standalone_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	"github.com/pulsehooks/pulsehooks/services/standalone"
)

// TestPortalLogsInBrowser drives the portal's delivery-state pages in
// Chromium (portal_e2e/logs.test.mjs): an endpoint answering 500 lists its
// held deliveries with next attempt times (and as due once that time has
// passed); the message logs (all endpoints, and the endpoint's own) find
// exactly one message by id and by job id, filter by state, event type and
// time range, expand a message to its attempts, and page through all 127
// messages (25 a page) each exactly once.
func TestPortalLogsInBrowser(t *testing.T) {
	e2eDir, node, artifacts := browserSuite(t)

	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL(), hooks: func(c *standalone.Config) {
		// Retries an hour apart: the deliveries stay waiting while the
		// browser looks at them.
		c.RetrySchedule = []time.Duration{0, time.Hour, time.Hour}
	}})
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"down"}`, http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	tn := sys.createTenant(t, "logs")
	ep := sys.createEndpoint(t, tn, map[string]any{"url": failing.URL + "/hook", "description": "answers 500"})
	hdr := map[string]string{"x-api-key": tn.Key}

	// 120 job.completed, then, after a time boundary, 7 job.failed.
	const completed, failed = 120, 7
	publish := func(eventType, jobID string) string {
		t.Helper()
		code, out := sys.publishHTTP(t, map[string]any{"tenant_id": tn.ID, "event_type": eventType, "data": jobData(eventType, jobID)})
		if code != http.StatusAccepted {
			t.Fatalf("publish %s: status %d %v", jobID, code, out)
		}
		id, _ := out["message_id"].(string)
		return id
	}
	var ids []string
	for i := range completed {
		ids = append(ids, publish("job.completed", fmt.Sprintf("job_%d", i)))
	}
	// The boundary is the second after the last job.completed was
	// created; the job.failed ones are published once it has passed.
	var last struct {
		CreatedAt time.Time `json:"created_at"`
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/messages/"+ids[completed-1], hdr, nil, &last); code != http.StatusOK {
			return fmt.Errorf("GET message %s: status %d", ids[completed-1], code)
		}
		return nil
	})
	boundary := last.CreatedAt.Truncate(time.Second).Add(time.Second)
	testenv.WaitFor(t, 5*time.Second, func() error {
		if time.Now().Before(boundary.Add(100 * time.Millisecond)) {
			return fmt.Errorf("before the boundary %s", boundary)
		}
		return nil
	})
	var failedIDs []string
	for i := range failed {
		failedIDs = append(failedIDs, publish("job.failed", fmt.Sprintf("job_failed_%d", i)))
	}
	all := append(append([]string{}, ids...), failedIDs...)
	// Every delivery is held with a next attempt time (retrying after its
	// 500, or put off while the endpoint fails).
	waitHeld(t, sys, hdr, ep.ID, len(all))

	link := func(h map[string]string) string {
		var out struct {
			Link string `json:"link"`
		}
		if code := call(t, "POST", sys.svc.ConfigURL()+"/webhook", h, nil, &out); code != http.StatusOK {
			t.Fatalf("POST /webhook: status %d", code)
		}
		return out.Link
	}
	jsonOf := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cmd := exec.Command(node, "--test", "--test-concurrency=1", "--test-reporter=spec", "logs.test.mjs")
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(),
		"PORTAL_LINK="+link(hdr),
		"PORTAL_BASE="+sys.svc.ConfigURL(),
		"FAILING_ENDPOINT_ID="+ep.ID,
		"MESSAGE_IDS="+jsonOf(all),
		"FAILED_IDS="+jsonOf(failedIDs),
		"BOUNDARY="+boundary.UTC().Format(time.RFC3339),
		"ARTIFACTS_DIR="+artifacts,
		"CHROMIUM="+envOr("PULSEHOOKS_CHROMIUM", "/usr/bin/chromium"),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}
}

// waitHeld waits until the endpoint holds exactly n deliveries, each with a
// next attempt time.
func waitHeld(t *testing.T, sys *system, hdr map[string]string, endpointID string, n int) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, func() error {
		var held struct {
			Data []struct {
				State         string     `json:"state"`
				NextAttemptAt *time.Time `json:"next_attempt_at"`
			} `json:"data"`
		}
		if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+endpointID+"/deliveries?state=held&limit=250", hdr, nil, &held); code != http.StatusOK {
			return fmt.Errorf("held deliveries: status %d", code)
		}
		timed := 0
		for _, d := range held.Data {
			if d.NextAttemptAt != nil {
				timed++
			}
		}
		if len(held.Data) != n || timed != n {
			return fmt.Errorf("%d held deliveries, %d with a next attempt time, want %d", len(held.Data), timed, n)
		}
		return nil
	})
}
