package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

func TestServesOnlyAfterSnapshot(t *testing.T) {
	h := newHarness(t, options{held: true})
	req := &eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`)}

	if status, body := h.get("/healthz"); status != http.StatusOK {
		t.Errorf("/healthz = %d %s, want 200 while the snapshot loads", status, body)
	}
	if status, body := h.get("/readyz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "snapshot") {
		t.Errorf("/readyz = %d %s, want 503 naming the snapshot", status, body)
	}
	status, header, body := h.post(`{"tenant_id":"ten_acme","event_type":"job.created","data":{}}`, nil)
	if status != http.StatusServiceUnavailable || httpError(t, body).Code != pulseclient.CodeUnavailable {
		t.Errorf("POST = %d %s, want 503 %s", status, body, pulseclient.CodeUnavailable)
	}
	if header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if _, err := h.publish(req, nil); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("NATS publish error = %v, want no responders until the snapshot is loaded", err)
	}
	if got := h.eventCount(); got != 0 {
		t.Errorf("EVENTS holds %d messages, want 0", got)
	}

	close(h.fake.release)
	h.waitReady()

	if resp := h.mustPublish(req); resp.GetMessageId() == "" {
		t.Error("publish after the snapshot: no message id")
	}
}

func TestShutdown(t *testing.T) {
	h := newHarness(t, options{})
	h.mustPublish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`)})
	addr := h.svc.HTTPAddr()

	if err := h.stop(); err != nil {
		t.Fatalf("Run = %v, want nil after a graceful shutdown", err)
	}

	if _, err := h.publish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`)}, nil); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("NATS publish after shutdown: error = %v, want no responders", err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("HTTP listener %s still accepts connections after shutdown", addr)
	}
}

func TestReplicasShareTheQueueGroup(t *testing.T) {
	h := newHarness(t, options{})
	second := &harness{t: t, nats: h.nats, config: h.config, fake: h.fake, spans: h.spans, pub: h.pub, js: h.js}
	second.start(options{})
	second.waitReady()
	const n = 40
	for range n {
		h.mustPublish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`)})
	}

	stats := h.microStats(2)

	total := 0
	for _, s := range stats {
		if len(s.Endpoints) != 1 {
			t.Fatalf("instance %s has %d endpoints, want 1", s.ID, len(s.Endpoints))
		}
		ep := s.Endpoints[0]
		if ep.Subject != streams.IngestSubject || ep.QueueGroup != streams.IngestQueue {
			t.Errorf("endpoint = %s in queue %q, want %s in queue %q", ep.Subject, ep.QueueGroup, streams.IngestSubject, streams.IngestQueue)
		}
		if ep.NumRequests == 0 {
			t.Errorf("instance %s handled no requests, want the queue group to share %d", s.ID, n)
		}
		total += ep.NumRequests
	}
	if total != n {
		t.Errorf("instances handled %d requests, want %d", total, n)
	}
	if got := h.eventCount(); got != n {
		t.Errorf("EVENTS holds %d messages, want %d", got, n)
	}
}

// microStats collects the STATS answers of want ingest instances.
func (h *harness) microStats(want int) []micro.Stats {
	h.t.Helper()
	subject, err := micro.ControlSubject(micro.StatsVerb, ServiceName, "")
	if err != nil {
		h.t.Fatalf("stats subject: %v", err)
	}
	inbox := nats.NewInbox()
	sub, err := h.pub.SubscribeSync(inbox)
	if err != nil {
		h.t.Fatalf("subscribe: %v", err)
	}
	defer sub.Unsubscribe()
	if err := h.pub.PublishRequest(subject, inbox, nil); err != nil {
		h.t.Fatalf("request stats: %v", err)
	}
	var out []micro.Stats
	for len(out) < want {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			h.t.Fatalf("%d of %d stats answers: %v", len(out), want, err)
		}
		var s micro.Stats
		if err := json.Unmarshal(msg.Data, &s); err != nil {
			h.t.Fatalf("decode stats: %v", err)
		}
		out = append(out, s)
	}
	return out
}

func TestNewErrors(t *testing.T) {
	n := testenv.StartNATS(t)
	nc := n.Conn(t)
	client := startFakeConfig(t, &fakeConfig{}, false)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := Config{HTTPAddr: "127.0.0.1:0", OperatorToken: testToken}
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name   string
		change func(*Config, *Deps)
		want   string
	}{
		{"no NATS", func(_ *Config, d *Deps) { d.NATS = nil }, "Deps.NATS"},
		{"no config client", func(_ *Config, d *Deps) { d.Config = nil }, "Deps.Config"},
		{"no operator token", func(c *Config, _ *Deps) { c.OperatorToken = "" }, "OperatorToken"},
		{"data limit over the NATS payload", func(c *Config, _ *Deps) { c.MaxDataBytes = int(nc.MaxPayload()) }, "max payload"},
		{"address in use", func(c *Config, _ *Deps) { c.HTTPAddr = busy.Addr().String() }, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, d := cfg, Deps{NATS: nc, Config: client, Logger: log}
			tt.change(&c, &d)

			svc, err := New(context.Background(), c, d)

			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want it to mention %q", err, tt.want)
			}
			if svc != nil {
				t.Errorf("New returned a service with error %v", err)
			}
		})
	}
}

func TestRestartKeepsStreamAndKeys(t *testing.T) {
	h := newHarness(t, options{})
	req := &eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`), IdempotencyKey: "across-restarts"}
	first := h.mustPublish(req)
	if err := h.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// A new service on the same server updates the stream and the bucket in
	// place and keeps what they hold.
	h.start(options{})
	h.waitReady()
	again := h.mustPublish(req)

	if again.GetMessageId() != first.GetMessageId() || !again.GetDuplicate() {
		t.Errorf("publish after restart = {%s %v}, want {%s true}", again.GetMessageId(), again.GetDuplicate(), first.GetMessageId())
	}
	if got := h.eventCount(); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", got)
	}
}

func TestWaitsForJetStreamAtStart(t *testing.T) {
	h := newHarness(t, options{late: true})
	nc := h.nats.Conn(t)
	h.nats.Stop()

	h.start(options{nc: nc, logLevel: slog.LevelError})

	if status, body := h.get("/healthz"); status != http.StatusOK {
		t.Errorf("/healthz = %d %s, want 200 while waiting for JetStream", status, body)
	}
	// The snapshot loads at once; the stream waits for the server.
	testenv.WaitFor(t, 10*time.Second, func() error {
		if status, body := h.get("/readyz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "not ensured") {
			return fmt.Errorf("/readyz = %d %s, want 503 naming the stream not ensured", status, body)
		}
		return nil
	})
	if status, _, body := h.post(`{"tenant_id":"ten_acme","event_type":"job.created","data":{}}`, nil); status != http.StatusServiceUnavailable {
		t.Errorf("POST = %d %s, want 503 while the stream is not ensured", status, body)
	}

	h.nats.Start()
	h.waitReady()

	if status, _, body := h.post(`{"tenant_id":"ten_acme","event_type":"job.created","data":{}}`, nil); status != http.StatusAccepted {
		t.Errorf("POST = %d %s, want 202 once JetStream is up", status, body)
	}
	if got := h.eventCount(); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", got)
	}
}

func TestShutdownDrainsHTTP(t *testing.T) {
	const drain = 2 * time.Second
	h := newHarness(t, options{configure: func(c *Config) { c.DrainPeriod = drain }})
	addr := h.svc.HTTPAddr()
	stopped := make(chan error, 1)
	start := time.Now()

	go func() { stopped <- h.stop() }()

	// /readyz fails at once…
	testenv.WaitFor(t, 500*time.Millisecond, func() error {
		if status, body := h.get("/readyz"); status != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
			return fmt.Errorf("/readyz = %d %s, want 503 shutting down", status, body)
		}
		return nil
	})
	// …while publishes over HTTP are still served during the drain…
	status, _, body := h.post(`{"tenant_id":"ten_acme","event_type":"job.created","data":{}}`, nil)
	if status != http.StatusAccepted {
		t.Errorf("POST during the drain = %d %s, want 202", status, body)
	}
	if elapsed := time.Since(start); elapsed >= drain {
		t.Fatalf("checks took %v, longer than the drain period %v", elapsed, drain)
	}
	// …and NATS publishers already go to the other members of the queue
	// group: this replica has left it.
	if _, err := h.publish(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{}`)}, nil); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("NATS publish during the drain: error = %v, want no responders", err)
	}

	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if elapsed := time.Since(start); elapsed < drain {
		t.Errorf("Run returned after %v, want at least the drain period %v", elapsed, drain)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("HTTP listener %s still accepts connections after the drain", addr)
	}
	if got := h.eventCount(); got != 1 {
		t.Errorf("EVENTS holds %d messages, want 1", got)
	}
}
