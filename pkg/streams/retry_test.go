package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

func TestRetryWaitsForALateServer(t *testing.T) {
	n := testenv.StartNATS(t)
	// Without a reconnect buffer each attempt fails at once while the
	// server is down, instead of waiting for its timeout.
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	n.Stop()
	var attempts atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- Retry(context.Background(), slog.New(slog.NewTextHandler(t.Output(), nil)), "ensure EVENTS", func(ctx context.Context) error {
			attempts.Add(1)
			_, err := EnsureEvents(ctx, js, Options{})
			return err
		})
	}()
	testenv.WaitFor(t, 20*time.Second, func() error {
		if got := attempts.Load(); got < 3 {
			return fmt.Errorf("%d attempts while the server is down, want at least 3", got)
		}
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("Retry returned %v while the server is down, want it to wait", err)
	default:
	}

	n.Start()

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Retry: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Retry did not return 30 s after the server started")
	}
	if _, err := js.Stream(context.Background(), Events); err != nil {
		t.Errorf("stream %s after Retry: %v", Events, err)
	}
}

func TestRetryStops(t *testing.T) {
	permanent := fmt.Errorf("ensure stream %s: %w", Deliveries, ErrPartitionsChanged)
	transient := errors.New("nats: no responders available for request")
	tests := []struct {
		name         string
		err          error
		ctxTimeout   time.Duration
		wantAttempts int32
		wantIs       error
	}{
		{"permanent error at once", permanent, time.Minute, 1, ErrPartitionsChanged},
		{"bad configuration at once", &jetstream.APIError{Code: 400, Description: "replicas > 1 not supported in non-clustered mode"}, time.Minute, 1, nil},
		{"transient error until the context ends", transient, 400 * time.Millisecond, 2, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tt.ctxTimeout)
			defer cancel()
			var attempts atomic.Int32

			err := Retry(ctx, nil, "step", func(context.Context) error {
				attempts.Add(1)
				return tt.err
			})

			if err == nil || !errors.Is(err, tt.err) {
				t.Errorf("Retry = %v, want it to wrap %v", err, tt.err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Retry = %v, want it to wrap %v", err, tt.wantIs)
			}
			if got := attempts.Load(); got < tt.wantAttempts || tt.wantAttempts == 1 && got != 1 {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
		})
	}
}
