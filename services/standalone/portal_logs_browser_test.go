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
// held deliveries with next attempt times; the message log finds exactly
// one message by id and by job id, and pages through all 60 messages
// (25 a page) each exactly once.
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

	const messages = 60
	ids := make([]string, messages)
	for i := range messages {
		code, out := sys.publishHTTP(t, map[string]any{"tenant_id": tn.ID, "event_type": "job.completed", "data": jobData("job.completed", fmt.Sprintf("job_%d", i))})
		if code != http.StatusAccepted {
			t.Fatalf("publish %d: status %d %v", i, code, out)
		}
		ids[i], _ = out["message_id"].(string)
	}
	// Every delivery is held with a next attempt time (retrying after its
	// 500, or put off while the endpoint fails).
	testenv.WaitFor(t, 60*time.Second, func() error {
		var held struct {
			Data []struct {
				State         string     `json:"state"`
				NextAttemptAt *time.Time `json:"next_attempt_at"`
			} `json:"data"`
		}
		if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+ep.ID+"/deliveries?state=held&limit=250", hdr, nil, &held); code != http.StatusOK {
			return fmt.Errorf("held deliveries: status %d", code)
		}
		timed := 0
		for _, d := range held.Data {
			if d.NextAttemptAt != nil {
				timed++
			}
		}
		if len(held.Data) != messages || timed != messages {
			return fmt.Errorf("%d held deliveries, %d with a next attempt time, want %d", len(held.Data), timed, messages)
		}
		return nil
	})

	var link struct {
		Link string `json:"link"`
	}
	if code := call(t, "POST", sys.svc.ConfigURL()+"/webhook", hdr, nil, &link); code != http.StatusOK {
		t.Fatalf("POST /webhook: status %d", code)
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "--test", "--test-concurrency=1", "--test-reporter=spec", "logs.test.mjs")
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(),
		"PORTAL_LINK="+link.Link,
		"PORTAL_BASE="+sys.svc.ConfigURL(),
		"FAILING_ENDPOINT_ID="+ep.ID,
		"MESSAGE_IDS="+string(idsJSON),
		"ARTIFACTS_DIR="+artifacts,
		"CHROMIUM="+envOr("PULSEHOOKS_CHROMIUM", "/usr/bin/chromium"),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}
}
