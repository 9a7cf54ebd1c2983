package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/connectivity"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// mainEnv makes the test binary run Main instead of the tests: "wait" runs
// until a signal, "ok" returns nil at once.
const mainEnv = "PROCESS_TEST_MAIN"

func TestMain(m *testing.M) {
	switch os.Getenv(mainEnv) {
	case "wait":
		Main("svc", func(ctx context.Context) error {
			fmt.Println("running")
			<-ctx.Done()
			return errors.New("stopped")
		})
		os.Exit(0) // not reached: Main exits with 1
	case "ok":
		Main("svc", func(context.Context) error { return nil })
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestReport(t *testing.T) {
	tests := []struct {
		err      error
		wantCode int
		wantOut  string
	}{
		{nil, 0, ""},
		{errors.New("boom"), 1, "fanout: boom\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if got := report(&out, "fanout", tt.err); got != tt.wantCode || out.String() != tt.wantOut {
			t.Errorf("report(%v) = %d writing %q, want %d writing %q", tt.err, got, out.String(), tt.wantCode, tt.wantOut)
		}
	}
}

func TestMainExitsOnce(t *testing.T) {
	t.Run("stopped by SIGTERM", func(t *testing.T) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), mainEnv+"=wait")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "running\n" {
			_ = cmd.Process.Kill()
			t.Fatalf("first output line = %q, %v; want \"running\"", line, err)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("exit = %v, want status 1", err)
		}
		if got, want := stderr.String(), "svc: stopped\n"; got != want {
			t.Errorf("stderr = %q, want %q", got, want)
		}
	})
	t.Run("run returns nil", func(t *testing.T) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), mainEnv+"=ok")
		out, err := cmd.CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Errorf("exit = %v with output %q, want status 0 and no output", err, out)
		}
	})
}

func TestStartFailsWithoutNATS(t *testing.T) {
	n := testenv.StartNATS(t)
	url := n.URL()
	n.Stop()
	p, err := Start(context.Background(), Options{Service: "test", NATSURL: url})
	if err == nil {
		_ = p.Close(context.Background())
		t.Fatal("Start with no NATS server = nil error, want one")
	}
	if !strings.Contains(err.Error(), "connect to nats") {
		t.Errorf("Start error = %v, want one about connecting to nats", err)
	}
}

func TestClose(t *testing.T) {
	n := testenv.StartNATS(t)
	ctx := context.Background()
	p, err := Start(ctx, Options{Service: "test", Version: "v0", NATSURL: n.URL(), LogLevel: "error"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DialConfig("127.0.0.1:1", "token"); err != nil {
		t.Fatal(err)
	}

	// What is still buffered in the connection reaches the server before it
	// is closed.
	var got atomic.Int64
	nc := n.Conn(t)
	if _, err := nc.Subscribe("close.test", func(*nats.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const sent = 1000
	for range sent {
		if err := p.NATS.Publish("close.test", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := got.Load(); n != sent {
			return fmt.Errorf("received %d of %d messages published before Close", n, sent)
		}
		return nil
	})

	if !p.NATS.IsClosed() {
		t.Error("NATS connection open after Close")
	}
	for _, conn := range p.conns {
		if got := conn.GetState(); got != connectivity.Shutdown {
			t.Errorf("config service connection state after Close = %v, want %v", got, connectivity.Shutdown)
		}
	}
	if _, span := p.TracerProvider.Tracer("test").Start(ctx, "after close"); span.IsRecording() {
		t.Error("span recording after Close, want the tracer provider shut down")
	}
}
