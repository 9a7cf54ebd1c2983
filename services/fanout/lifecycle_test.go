package fanout

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

func TestNewRejectsBadSetup(t *testing.T) {
	n := testenv.StartNATS(t)
	nc := n.Conn(t)
	f := newFakeConfig(false)
	client := f.serve(t)
	if _, err := streams.EnsureDeliveries(context.Background(), n.JetStream(t), streams.Options{Partitions: 8}, time.Minute); err != nil {
		t.Fatalf("EnsureDeliveries: %v", err)
	}
	tests := []struct {
		name    string
		cfg     Config
		deps    Deps
		wantErr string
	}{
		{"no NATS", testConfig(), Deps{Config: client}, "Deps.NATS"},
		{"no config client", testConfig(), Deps{NATS: nc}, "Deps.Config"},
		{"negative concurrency", Config{Concurrency: -1}, Deps{NATS: nc, Config: client}, "Concurrency"},
		{"partition count differs from the stream's", Config{Streams: streams.Options{Partitions: 4}}, Deps{NATS: nc, Config: client}, "partition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := New(context.Background(), tt.cfg, tt.deps)
			if err == nil {
				t.Fatalf("New returned %v and no error, want an error mentioning %q", svc, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %q, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestNoEventConsumedBeforeTheSnapshot(t *testing.T) {
	h := newHarness(t, true)
	tenant := newTenant()
	ep := newEndpoint(tenant.GetId())
	h.config.push(upsertTenant(tenant), upsertEndpoint(ep))
	svc := h.newService(testConfig(), nil)
	ev := newEvent(tenant.GetId(), "job.completed")
	seq := h.publishEvent(ev, nil)

	h.run(svc)
	h.waitWatching()
	// The service now waits for its snapshot; give it time to misbehave.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		info, err := h.consumerInfo()
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Consumer > 0 {
			t.Fatalf("consumer handed out %d events before the snapshot, want 0", info.Delivered.Consumer)
		}
		if svc.Ready() {
			t.Fatal("Ready() = true before the snapshot, want false")
		}
		time.Sleep(20 * time.Millisecond)
	}

	h.config.release()
	h.waitSettled(seq)
	got := h.deliveriesOf(ev.GetMessageId())
	if _, ok := got[ep.GetId()]; !ok || len(got) != 1 {
		t.Errorf("stored %d deliveries (to the endpoint: %v), want 1 to the endpoint", len(got), ok)
	}
}

func TestRunReturnsNilWhenItsContextEnds(t *testing.T) {
	tests := []struct {
		name string
		held bool
	}{
		{"while consuming", false},
		{"while waiting for the snapshot", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.held)
			svc := h.newService(testConfig(), nil)
			stop := h.run(svc)
			if tt.held {
				h.waitWatching()
			} else {
				h.waitReady(svc)
			}
			stop() // fails the test unless Run returns nil
			if svc.Ready() {
				t.Error("Ready() = true after Run returned, want false")
			}
		})
	}
}

// countingHandler counts the records logged at warning level or above.
type countingHandler struct {
	warnings *atomic.Int32
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.warnings.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func TestNewWaitsForALateServer(t *testing.T) {
	n := testenv.StartNATS(t)
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	client := newFakeConfig(false).serve(t)
	n.Stop()
	var warnings atomic.Int32
	done := make(chan error, 1)
	go func() {
		_, err := New(context.Background(), testConfig(), Deps{NATS: nc, Config: client, Logger: slog.New(countingHandler{&warnings})})
		done <- err
	}()
	testenv.WaitFor(t, 20*time.Second, func() error {
		if got := warnings.Load(); got < 2 {
			return fmt.Errorf("%d failed attempts logged while the server is down, want at least 2", got)
		}
		return nil
	})
	select {
	case err := <-done:
		t.Fatalf("New returned %v while the server is down, want it to wait", err)
	default:
	}

	n.Start()

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("New: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("New did not return 30 s after the server started")
	}
}
