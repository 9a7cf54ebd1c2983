package main

import (
	"bufio"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptExitsZero builds the command, starts it on free ports and
// interrupts it once it is serving, as Ctrl-C in make run does: it must stop
// gracefully and exit 0.
func TestInterruptExitsZero(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pulsehooks")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-data", t.TempDir(), "-nats-port", "-1",
		"-http", "127.0.0.1:0", "-grpc", "127.0.0.1:0", "-ingest", "127.0.0.1:0")
	cmd.Stderr = t.Output()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ctrl-C") {
				close(serving)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-serving:
	case <-time.After(60 * time.Second):
		t.Fatal("no banner within 60 s")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGINT: %v, want exit status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30 s after SIGINT")
	}
}
