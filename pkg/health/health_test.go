package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// get returns the status of GET url, or an error if there is no answer.
func get(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestServer(t *testing.T) {
	var ready atomic.Bool
	s, err := Listen("127.0.0.1:0", ready.Load)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	base := "http://" + s.Addr().String()

	tests := []struct {
		path  string
		ready bool
		want  int
	}{
		{"/healthz", false, http.StatusOK},
		{"/readyz", false, http.StatusServiceUnavailable},
		{"/readyz", true, http.StatusOK},
		{"/healthz", true, http.StatusOK},
		{"/metrics", true, http.StatusNotFound},
	}
	for _, tt := range tests {
		ready.Store(tt.ready)
		got, err := get(base + tt.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		if got != tt.want {
			t.Errorf("GET %s with ready=%v = %d, want %d", tt.path, tt.ready, got, tt.want)
		}
	}

	cancel()
	if err := wait(t, done); err != nil {
		t.Errorf("Serve returned %v after its context ended, want nil", err)
	}
	if _, err := get(base + "/healthz"); err == nil {
		t.Error("GET /healthz answered after Serve returned, want the listener closed")
	}
}

func TestListenAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(ln.Addr().String(), func() bool { return true }); err == nil {
		t.Errorf("Listen on %s, which is taken, = nil error, want one", ln.Addr())
	}
}

func TestRun(t *testing.T) {
	errBoom := errors.New("boom")
	t.Run("without a listener", func(t *testing.T) {
		called := false
		err := Run(context.Background(), "", nil, func(context.Context) error { called = true; return errBoom })
		if !called || !errors.Is(err, errBoom) {
			t.Errorf("Run with no address: called = %v, err = %v; want run called and %v", called, err, errBoom)
		}
	})

	t.Run("context ends", func(t *testing.T) {
		addr := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, addr, func() bool { return true }, func(ctx context.Context) error {
				<-ctx.Done()
				return nil
			})
		}()
		waitServing(t, addr)
		cancel()
		if err := wait(t, done); err != nil {
			t.Errorf("Run after its context ended = %v, want nil", err)
		}
	})

	t.Run("run fails", func(t *testing.T) {
		addr := freeAddr(t)
		fail := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- Run(context.Background(), addr, func() bool { return true }, func(ctx context.Context) error {
				select {
				case <-fail:
					return errBoom
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
		waitServing(t, addr)
		close(fail)
		if err := wait(t, done); !errors.Is(err, errBoom) {
			t.Errorf("Run after run failed = %v, want %v", err, errBoom)
		}
		if _, err := get("http://" + addr + "/healthz"); err == nil {
			t.Error("GET /healthz answered after Run returned, want the listener closed")
		}
	})

	t.Run("listener fails", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		called := false
		err = Run(context.Background(), ln.Addr().String(), nil, func(context.Context) error { called = true; return nil })
		if err == nil || called {
			t.Errorf("Run on a taken address: err = %v, run called = %v; want an error and run not called", err, called)
		}
	})
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// wait returns what done delivers, failing the test if that takes over 10s.
func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after it should have returned")
		return nil
	}
}

// waitServing waits until addr answers probes.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() error {
		_, err := get("http://" + addr + "/readyz")
		return err
	})
}

// startingService is ready once its ready channel is closed.
type startingService struct{ ready chan struct{} }

func (s *startingService) Ready() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

func (s *startingService) Run(ctx context.Context) error { <-ctx.Done(); return nil }

func TestRunStarting(t *testing.T) {
	addr := freeAddr(t)
	release := make(chan struct{})
	svc := &startingService{ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunStarting(ctx, addr, func(ctx context.Context) (*startingService, error) {
			select {
			case <-release:
				return svc, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	}()
	waitServing(t, addr)
	if status, err := get("http://" + addr + "/readyz"); err != nil || status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while starting = %d %v, want 503", status, err)
	}
	close(release)
	close(svc.ready)
	testenv.WaitFor(t, 5*time.Second, func() error {
		if status, err := get("http://" + addr + "/readyz"); err != nil || status != http.StatusOK {
			return fmt.Errorf("/readyz = %d %v, want 200", status, err)
		}
		return nil
	})
	cancel()
	if err := wait(t, done); err != nil {
		t.Errorf("RunStarting after its context ended = %v, want nil", err)
	}

	// Stopped while starting: nil, not the start's context error.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err := RunStarting(ctx, freeAddr(t), func(ctx context.Context) (*startingService, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if err != nil {
		t.Errorf("RunStarting stopped while starting = %v, want nil", err)
	}
}

func TestWithMetrics(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler http.Handler
		want    int
	}{
		{"handler", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("m 1\n")) }), http.StatusOK},
		{"nil handler (metrics off)", nil, http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Listen("127.0.0.1:0", func() bool { return true }, WithMetrics(tt.handler))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			got, err := get("http://" + s.Addr().String() + "/metrics")
			cancel()
			if werr := wait(t, done); werr != nil {
				t.Errorf("Serve = %v", werr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("GET /metrics = %d, want %d", got, tt.want)
			}
		})
	}
}
