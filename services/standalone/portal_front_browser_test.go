package standalone_test

import (
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestPortalFrontInBrowser drives the portal's own pages in Chromium
// (portal_e2e/front.test.mjs): the endpoint chart's totals, the attempt
// page in plain words, errors by label with focus, a form kept across an
// ended session, the operator's branding, and embedding in an iframe from
// an allowed origin and refused from another.
func TestPortalFrontInBrowser(t *testing.T) {
	e2eDir, node, artifacts := browserSuite(t)

	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL()})
	rcv := newPortalReceiver(t)
	tn := sys.createTenant(t, "front")

	// A closed port, for "Connection refused".
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/hook"
	_ = ln.Close()

	ok := sys.createEndpoint(t, tn, map[string]any{"url": rcv.srv.URL + "/front-ok", "description": "always answers 200"})
	refused := sys.createEndpoint(t, tn, map[string]any{"url": closed, "description": "nothing listens here"})
	const sends = 5
	for i := range sends {
		var out map[string]any
		if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+ok.ID+"/test", map[string]string{"x-api-key": tn.Key},
			map[string]any{"payload": map[string]any{"job_id": fmt.Sprintf("job_%d", i)}}, &out); code != http.StatusAccepted {
			t.Fatalf("test send %d: status %d", i, code)
		}
	}
	if code := call(t, "POST", sys.svc.ConfigURL()+"/v1/endpoints/"+refused.ID+"/test", map[string]string{"x-api-key": tn.Key}, nil, nil); code != http.StatusAccepted {
		t.Fatalf("test send to the closed port: status %d", code)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		var st struct{ Success, Failure int }
		call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+ok.ID+"/stats", map[string]string{"x-api-key": tn.Key}, nil, &st)
		var bad struct{ Success, Failure int }
		call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints/"+refused.ID+"/stats", map[string]string{"x-api-key": tn.Key}, nil, &bad)
		if st.Success != sends || bad.Failure == 0 {
			return fmt.Errorf("stats: %d successes of %d, %d failures at the closed port", st.Success, sends, bad.Failure)
		}
		return nil
	})

	// The tenant's app: it hands out portal links (/link) and embeds one
	// in a page (/frame). Its origin, as http://localhost:<port>, is the one
	// the operator allows; the same pages from another port are refused.
	link := func(embed bool) string {
		var out struct {
			Link string `json:"link"`
		}
		var body any
		if embed {
			body = map[string]any{"embed": true, "return_url": "http://localhost/back"}
		}
		if code := call(t, "POST", sys.svc.ConfigURL()+"/webhook", map[string]string{"x-api-key": tn.Key}, body, &out); code != http.StatusOK {
			t.Errorf("POST /webhook: status %d", code)
		}
		return out.Link
	}
	app := http.NewServeMux()
	app.HandleFunc("GET /link", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, link(false))
	})
	app.HandleFunc("GET /frame", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Tenant app</title><h1>Tenant app</h1><iframe id="portal" title="Webhooks" src="%s" width="1100" height="700"></iframe>`,
			html.EscapeString(link(true)))
	})
	app.HandleFunc("GET /logo.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = io.WriteString(w, `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="32" viewBox="0 0 96 32"><rect width="96" height="32" rx="6" fill="#7c3aed"/><text x="48" y="22" font-size="16" text-anchor="middle" fill="#fff" font-family="sans-serif">ACME</text></svg>`)
	})
	allowed := httptest.NewServer(app)
	t.Cleanup(allowed.Close)
	other := httptest.NewServer(app)
	t.Cleanup(other.Close)
	allowedOrigin := strings.Replace(allowed.URL, "127.0.0.1", "localhost", 1)
	otherOrigin := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)

	const brandColor = "#7c3aed"
	if code := call(t, "PATCH", sys.svc.ConfigURL()+"/admin/v1/tenants/front", sys.admin(), map[string]any{"portal": map[string]any{
		"product_name": "Acme Hooks", "logo_url": allowed.URL + "/logo.svg", "primary_color": brandColor, "theme": "dark",
		"frame_ancestors": []string{allowedOrigin},
	}}, nil); code != http.StatusOK {
		t.Fatalf("PATCH the tenant's portal settings: status %d", code)
	}

	cmd := exec.Command(node, "--test", "--test-concurrency=1", "--test-reporter=spec", "front.test.mjs")
	cmd.Dir = e2eDir
	cmd.Env = append(os.Environ(),
		"PORTAL_BASE="+sys.svc.ConfigURL(),
		"LINK_SERVER="+allowed.URL+"/link",
		"ALLOWED_FRAME="+allowedOrigin+"/frame",
		"OTHER_FRAME="+otherOrigin+"/frame",
		"OK_ENDPOINT_ID="+ok.ID,
		"REFUSED_ENDPOINT_ID="+refused.ID,
		"OK_SENDS="+fmt.Sprint(sends),
		"RECEIVER_URL="+rcv.srv.URL,
		"BRAND_COLOR="+brandColor,
		"LOGO_URL="+allowed.URL+"/logo.svg",
		"ARTIFACTS_DIR="+artifacts,
		"CHROMIUM="+envOr("PULSEHOOKS_CHROMIUM", "/usr/bin/chromium"),
	)
	out, err := cmd.CombinedOutput()
	t.Logf("node --test output:\n%s", out)
	if err != nil {
		t.Fatalf("browser tests failed: %v", err)
	}

	// The form kept across the ended session was saved exactly once.
	var eps struct {
		Data []struct {
			URL string `json:"url"`
		} `json:"data"`
	}
	call(t, "GET", sys.svc.ConfigURL()+"/v1/endpoints?limit=250", map[string]string{"x-api-key": tn.Key}, nil, &eps)
	kept := 0
	for _, ep := range eps.Data {
		if ep.URL == rcv.srv.URL+"/kept-across-sessions" {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("endpoints with the kept form's URL: %d, want exactly 1", kept)
	}
}
