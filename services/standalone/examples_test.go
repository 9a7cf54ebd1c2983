package standalone_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestExamples runs each receiver in examples/ against the whole system
// started in process: an endpoint points at the example's port, job events
// are published through ingest, and the example must print a verified line
// for each. Python and Go need only their toolchains (python3 is skipped
// only when absent; CI has it); Express needs node and npm (npm ci from the
// committed lock file) and fails without them.
func TestExamples(t *testing.T) {
	examples := filepath.Join("..", "..", "examples")
	tests := []struct {
		name string
		dir  string
		tool string
		args []string
	}{
		{"go", filepath.Join(examples, "go"), "go", nil},
		{"python", filepath.Join(examples, "python"), "python3", []string{"handler.py"}},
		{"express", filepath.Join(examples, "express"), "node", []string{"server.js"}},
	}
	sys := startSystem(t, sysOptions{dataDir: t.TempDir()})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := exec.LookPath(tt.tool); err != nil {
				if tt.tool == "python3" {
					t.Skip("python3 is not installed")
				}
				t.Fatalf("%s is not installed: make test needs Go, and Node.js 20 with npm (see README.md)", tt.tool)
			}
			if tt.tool == "node" {
				npmCI(t, tt.dir)
			}
			tn := sys.createTenant(t, "examples-"+tt.name)
			port := freePort(t)
			ep := sys.createEndpoint(t, tn, map[string]any{"url": "http://127.0.0.1:" + port + "/webhook"})
			name, args := tt.tool, tt.args
			if tt.tool == "go" { // build, so that stopping it stops the receiver, not go run
				name = filepath.Join(t.TempDir(), "receiver")
				build := exec.Command("go", "build", "-o", name, ".")
				build.Dir = tt.dir
				if out, err := build.CombinedOutput(); err != nil {
					t.Fatalf("go build: %v\n%s", err, out)
				}
				args = nil
			}
			out := startExample(t, tt.dir, []string{"WEBHOOK_SECRET=" + ep.Secret, "PORT=" + port}, name, args...)
			out.waitFor(t, 30*time.Second, regexp.MustCompile(`listening on`))
			forged := map[string]string{"webhook-id": "msg_forged", "webhook-timestamp": strconv.FormatInt(time.Now().Unix(), 10),
				"webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
			if code := call(t, "POST", "http://127.0.0.1:"+port+"/webhook", forged, map[string]any{"type": "job.completed"}, nil); code != 401 {
				t.Errorf("forged delivery: status %d, want 401", code)
			}

			for _, et := range []string{"job.created", "job.processing", "job.completed"} {
				job := fmt.Sprintf("job_ex%d", i)
				body := map[string]any{"tenant_id": tn.ID, "event_type": et, "data": jobData(et, job), "idempotency_key": job + et}
				if code, res := sys.publishHTTP(t, body); code != 202 {
					t.Fatalf("publish %s: status %d: %v", et, code, res)
				}
				out.waitFor(t, 30*time.Second, regexp.MustCompile(`verified `+regexp.QuoteMeta(et)+` msg_\w+`))
			}
		})
	}
}

// TestExamplePythonCompleteIntegration runs complete_integration.py: it
// registers itself, publishes a job's events, receives them and fetches the
// result from result_url.
func TestExamplePythonCompleteIntegration(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	sys := startSystem(t, sysOptions{dataDir: t.TempDir()})
	tn := sys.createTenant(t, "integration")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "complete_integration.py")
	cmd.Dir = filepath.Join("..", "..", "examples", "python")
	cmd.Env = append(os.Environ(), "KEY="+tn.Key, "INGEST_TOKEN="+sys.svc.OperatorToken(), "TENANT_ID="+tn.ID,
		"PULSEHOOKS_API_URL="+sys.svc.ConfigURL(), "PULSEHOOKS_INGEST_URL="+sys.svc.IngestURL())
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("complete_integration.py: %v\n%s", err, got)
	}
	for _, want := range []string{`verified job.created msg_\w+ job_\w+ queued`, `verified job.processing msg_\w+`,
		`verified job.completed msg_\w+ job_\w+ completed`, `result of job_\w+: \{"job_id"`} {
		if !regexp.MustCompile(want).Match(got) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// npmCI installs an example's pinned packages from its lock file.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm is not installed: make test needs Node.js 20 with npm (see README.md)")
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// exampleOutput collects the standard output of a running example.
type exampleOutput struct {
	mu    sync.Mutex
	lines []string
}

// startExample runs an example until the test ends.
func startExample(t *testing.T, dir string, env []string, name string, args ...string) *exampleOutput {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = t.Output()
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	out := &exampleOutput{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.mu.Lock()
			out.lines = append(out.lines, sc.Text())
			out.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = cmd.Wait()
	})
	return out
}

// waitFor polls until a line matches re.
func (o *exampleOutput) waitFor(t *testing.T, timeout time.Duration, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		for _, l := range o.lines {
			if re.MatchString(l) {
				o.mu.Unlock()
				return
			}
		}
		o.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	t.Fatalf("no output line matches %s within %s; got:\n%s", re, timeout, strings.Join(o.lines, "\n"))
}
