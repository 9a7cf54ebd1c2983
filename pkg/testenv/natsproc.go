package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// natsdBinary is the natsd command (pkg/testenv/natsd), built once per test
// binary.
var natsdBinary struct {
	once sync.Once
	path string
	err  error
}

// buildNatsd builds pkg/testenv/natsd into a temporary directory, once.
func buildNatsd() (string, error) {
	natsdBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "pulsehooks-natsd-")
		if err != nil {
			natsdBinary.err = fmt.Errorf("temporary directory for natsd: %w", err)
			return
		}
		path := filepath.Join(dir, "natsd")
		out, err := exec.Command("go", "build", "-o", path, "github.com/pulsehooks/pulsehooks/pkg/testenv/natsd").CombinedOutput()
		if err != nil {
			natsdBinary.err = fmt.Errorf("go build natsd: %v\n%s", err, out)
			return
		}
		natsdBinary.path = path
	})
	return natsdBinary.path, natsdBinary.err
}

// NATSProcess is a nats-server with JetStream running as its own OS
// process on a fixed loopback port and store directory, so a test can
// SIGKILL it — nothing is flushed, as in a crash — and start it again on
// the same store.
type NATSProcess struct {
	t        testing.TB
	bin      string
	port     int
	storeDir string
	cmd      *exec.Cmd
	done     chan struct{}
}

// StartNATSProcess builds natsd (once per test binary) and starts it on a
// free port and a temporary store; it is stopped when the test ends.
func StartNATSProcess(t testing.TB) *NATSProcess {
	t.Helper()
	bin, err := buildNatsd()
	if err != nil {
		t.Fatal(err)
	}
	n := &NATSProcess{t: t, bin: bin, port: freePort(t), storeDir: t.TempDir()}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// URL is the server's client URL.
func (n *NATSProcess) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// Start starts the server (again) on its port and store and waits until it
// accepts connections.
func (n *NATSProcess) Start() {
	n.t.Helper()
	if n.cmd != nil {
		return
	}
	for try := 0; ; try++ {
		err := n.start()
		if err == nil {
			return
		}
		if try == 50 { // the port may still be in TIME_WAIT
			n.t.Fatalf("start natsd: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *NATSProcess) start() error {
	cmd := exec.Command(n.bin, "-port", strconv.Itoa(n.port), "-store", n.storeDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	out := &Buffer{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.bin, err)
	}
	done := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				close(ready)
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-ready:
		n.cmd, n.done = cmd, done
		return nil
	case <-done:
		return fmt.Errorf("natsd exited at start: %s", out.String())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("natsd not ready after 30s: %s", out.String())
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (n *NATSProcess) Kill() { n.signal(syscall.SIGKILL) }

// Stop stops the server with SIGTERM (a graceful shutdown) and waits.
func (n *NATSProcess) Stop() { n.signal(syscall.SIGTERM) }

func (n *NATSProcess) signal(sig syscall.Signal) {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// JetStream returns a JetStream context on a new connection that
// reconnects forever; it is closed when the test ends.
func (n *NATSProcess) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	return jetStreamOn(t, connect(t, n.URL()))
}
