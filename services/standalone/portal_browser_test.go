package standalone_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// portalReceiver is the webhook receiver of the browser tests. Its control
// path switches it between answering 200 and answering 500 with a body, so
// the browser tests can make deliveries fail and recover.
type portalReceiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	failing bool
}

const receiverDownBody = `{"error":"receiver is down for maintenance"}`

func newPortalReceiver(t *testing.T) *portalReceiver {
	t.Helper()
	r := &portalReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/_control" {
			r.mu.Lock()
			r.failing = req.URL.Query().Get("mode") == "fail"
			r.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
			return
		}
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := http.StatusOK
		if r.failing {
			status = http.StatusInternalServerError
		}
		r.got = append(r.got, received{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, Status: status})
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = io.WriteString(w, `{"received":true}`)
		} else {
			_, _ = io.WriteString(w, receiverDownBody)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *portalReceiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// browserResults is what the browser tests write for this test to check.
type browserResults struct {
	EndpointID string `json:"endpoint_id"`
	OldSecret  string `json:"old_secret"`
	NewSecret  string `json:"new_secret"`
	RotatedAt  string `json:"rotated_at"`
}

// requireBrowser fails the test, never skips it, when the browser test
// toolchain is missing: `make test` installs it (scripts/ensure-browser.sh).
func requireBrowser(t *testing.T, dir string) string {
	t.Helper()
	chromium := os.Getenv("PULSEHOOKS_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed; the portal browser tests need node 20+: run `make test` (scripts/ensure-browser.sh)")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("chromium not found at %s; run `make test`, which installs it (scripts/ensure-browser.sh)", chromium)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core is not installed in %s; run `make test`, which runs npm ci there (scripts/ensure-browser.sh)", dir)
	}
	return node
}

// browserSuite returns the browser suite's directory (portal_e2e), the
// node binary that runs it (skipping or failing as requireBrowser says),
// and the artifacts folder for its screenshots, created.
func browserSuite(t *testing.T) (e2eDir, node, artifacts string) {
	t.Helper()
	e2eDir, err := filepath.Abs("portal_e2e")
	if err != nil {
		t.Fatal(err)
	}
	node = requireBrowser(t, e2eDir)
	artifacts, err = filepath.Abs(filepath.Join("..", "..", "artifacts", "portal"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	return e2eDir, node, artifacts
}

func TestPortalInBrowser(t *testing.T) {
	e2eDir, node, artifacts := browserSuite(t)

	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL()})
	rcv := newPortalReceiver(t)
	a := sys.createTenant(t, "browser-a")
	b := sys.createTenant(t, "browser-b")
	epB := sys.createEndpoint(t, b, map[string]any{"url": rcv.srv.URL + "/tenant-b", "description": "B's private endpoint"})
	link := func(tn tenant) string {
		var out struct {
			Link string `json:"link"`
		}
		if code := call(t, "POST", sys.svc.ConfigURL()+"/webhook", map[string]string{"x-api-key": tn.Key}, nil, &out); code != http.StatusOK {
			t.Fatalf("POST /webhook: status %d", code)
		}
		return out.Link
	}
	// The attempt-log routes let the pages show attempts; tests that need
	// them say so when they are not registered.
	var probe map[string]any
	attemptLog := call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+epB.ID+"/attempts", map[string]string{"x-api-key": b.Key}, nil, &probe) == http.StatusOK

	resultsFile := filepath.Join(t.TempDir(), "results.json")
	cmd := exec.Command(node, "--test", "--test-concurrency=1", "--test-reporter=spec", "portal.test.mjs")
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(),
		"PORTAL_LINK_A="+link(a),
		"PORTAL_BASE="+sys.svc.ConfigURL(),
		"TENANT_B_ENDPOINT_ID="+epB.ID,
		"RECEIVER_URL="+rcv.srv.URL,
		"RECEIVER_DOWN_BODY="+receiverDownBody,
		"ARTIFACTS_DIR="+artifacts,
		"RESULTS_FILE="+resultsFile,
		"ATTEMPT_LOG="+strconv.FormatBool(attemptLog),
		"CHROMIUM="+envOr("PULSEHOOKS_CHROMIUM", "/usr/bin/chromium"),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}
	if !attemptLog {
		t.Logf("the attempt-log routes are not registered: the browser tests skipped the steps that read attempts (see above)")
	}

	testenv.WaitFor(t, 20*time.Second, func() error {
		for _, r := range rcv.requests() {
			if r.Path == "/portal-hook" && len(strings.Fields(r.Header.Get("webhook-signature"))) == 2 {
				return nil
			}
		}
		return fmt.Errorf("no delivery with two signatures yet")
	})
	raw, err := os.ReadFile(resultsFile)
	if err != nil {
		t.Fatalf("browser tests wrote no results: %v", err)
	}
	var res browserResults
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("results %s: %v", raw, err)
	}

	// The test send: one signed POST with the custom header and basic auth.
	reqs := rcv.requests()
	var mine []received
	for _, r := range reqs {
		if r.Path == "/tenant-b" {
			t.Errorf("tenant B's endpoint received a request: %v", r.Header)
		}
		if r.Path == "/portal-hook" {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		t.Fatalf("the receiver got nothing at /portal-hook; all: %d requests", len(reqs))
	}
	first := mine[0]
	verifyWith(t, res.OldSecret, first)
	if got := first.Header.Get("X-Portal-Test"); got != "from-the-browser" {
		t.Errorf("custom header X-Portal-Test = %q, want from-the-browser", got)
	}
	if user, pass, ok := (&http.Request{Header: first.Header}).BasicAuth(); !ok || user != "hookuser" || pass != "s3cret-pass" {
		t.Errorf("basic auth = %q/%q (%v), want hookuser/s3cret-pass", user, pass, ok)
	}
	var env struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(first.Body, &env); err != nil || env.Type != "pulsehooks.test" || env.Data["note"] != "sent from the portal" {
		t.Errorf("first delivery body %s: want the edited pulsehooks.test payload (%v)", first.Body, err)
	}

	// After rotation: two signatures, one per secret, both valid.
	rotated, err := time.Parse(time.RFC3339Nano, res.RotatedAt)
	if err != nil {
		t.Fatalf("rotated_at %q: %v", res.RotatedAt, err)
	}
	var after *received
	for i := range mine {
		ts, _ := strconv.ParseInt(mine[i].Header.Get("webhook-timestamp"), 10, 64)
		if time.Unix(ts, 0).After(rotated.Add(-time.Second)) && strings.Contains(mine[i].Header.Get("webhook-signature"), " ") {
			after = &mine[i]
		}
	}
	if after == nil {
		t.Fatalf("no delivery after the rotation carried two signatures; deliveries: %d", len(mine))
	}
	sigs := strings.Fields(after.Header.Get("webhook-signature"))
	if len(sigs) != 2 {
		t.Errorf("webhook-signature = %q, want two signatures", after.Header.Get("webhook-signature"))
	}
	ts, _ := strconv.ParseInt(after.Header.Get("webhook-timestamp"), 10, 64)
	for _, secret := range []string{res.OldSecret, res.NewSecret} {
		key, err := signature.ParseSecret(secret)
		if err != nil {
			t.Fatalf("secret: %v", err)
		}
		want := signature.Sign(key, after.Header.Get("webhook-id"), time.Unix(ts, 0), after.Body)
		found := false
		for _, s := range sigs {
			found = found || s == want
		}
		if !found {
			t.Errorf("no signature of %s… among %q", secret[:10], sigs)
		}
		verifyWith(t, secret, *after)
	}
}

func verifyWith(t *testing.T, secret string, got received) {
	t.Helper()
	v, err := signature.NewVerifier(secret)
	if err != nil {
		t.Fatalf("verifier: %v", err)
	}
	if err := v.Verify(got.Header, got.Body); err != nil {
		t.Errorf("signature does not verify with %s…: %v", secret[:10], err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
