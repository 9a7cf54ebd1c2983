package fanout

import (
	"context"
	"strings"
	"testing"
	"time"

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
