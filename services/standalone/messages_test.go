package standalone_test

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// messageKind names the part of the pipeline a NATS subject belongs to.
func messageKind(subject string) string {
	for _, k := range []struct{ prefix, kind string }{
		{streams.IngestSubject, "ingest request"},
		{"$KV.ph_ingest_idem.", "ingest idempotency record"},
		{streams.EventsPrefix + ".", "EVENTS publish"},
		{streams.DeliveriesPrefix + ".", "DELIVERIES publish"},
		{streams.AttemptsPrefix + ".", "ATTEMPTS publish"},
		{"$JS.ACK.EVENTS.", "EVENTS ack (fanout)"},
		{"$JS.ACK.DELIVERIES.", "DELIVERIES ack"},
		{"$JS.ACK.", "other ack"},
		{"$JS.API.CONSUMER.MSG.NEXT.", "pull request"},
		{"$JS.API.", "other JetStream API"},
		{"$JS.FC.", "flow control"},
		{"$KV.ph_delivery_", "leases and members (background)"},
		{"$KV.", "other KV"},
		{"_INBOX.", "to clients (replies, acks, pulled messages)"},
	} {
		if strings.HasPrefix(subject, k.prefix) {
			return k.kind
		}
	}
	return "other"
}

// TestMessagesPerDelivery counts the NATS messages the pipeline routes per
// delivery, one event at a time (the trickle case: nothing to batch), from
// the publish to the attempt record, with a subscriber to every subject.
// It prints them by kind (the cost model in docs/ARCHITECTURE.md) and
// fails when the count grows past a bound well above today's, as it would
// with a loop that makes requests at rest.
func TestMessagesPerDelivery(t *testing.T) {
	const events = 200
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL()})
	recv := newReceiver(t)
	tn := sys.createTenant(t, "tenant-count")
	sys.createEndpoint(t, tn, map[string]any{"url": recv.url("count")})
	client := pulseclient.New(sys.nc(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// One event first: every view and consumer is warm before counting.
	if _, err := client.Publish(ctx, pulseclient.PublishInput{TenantID: tn.ID, EventType: "job.completed", Data: jobData("job.completed", "job_warm")}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	recv.waitCount(t, "count", 1)
	js := sys.js(t)
	waitStream(t, js, streams.Attempts, 1)
	time.Sleep(500 * time.Millisecond)

	var (
		mu     sync.Mutex
		counts = map[string]int{}
	)
	spy := sys.nc(t)
	sub, err := spy.Subscribe(">", func(m *nats.Msg) {
		mu.Lock()
		counts[messageKind(m.Subject)]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	var memBefore, memAfter runtime.MemStats
	runtime.ReadMemStats(&memBefore)
	start := time.Now()
	for i := range events {
		if _, err := client.Publish(ctx, pulseclient.PublishInput{TenantID: tn.ID, EventType: "job.completed", Data: jobData("job.completed", fmt.Sprintf("job_%d", i))}); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	recv.waitCount(t, "count", events+1)
	settled(t, js)
	waitStream(t, js, streams.Attempts, events+1)
	// The attempt log reads both streams within milliseconds.
	time.Sleep(500 * time.Millisecond)
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&memAfter)
	if got := len(recv.requests("count")); got != events+1 {
		t.Errorf("endpoint received %d requests, want %d", got, events+1)
	}

	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, kind := range slices.Sorted(maps.Keys(counts)) {
		total += counts[kind]
		t.Logf("%-45s %6d  %5.2f per delivery", kind, counts[kind], float64(counts[kind])/events)
	}
	perDelivery := float64(total) / events
	t.Logf("%d messages routed for %d deliveries in %v: %.2f per delivery", total, events, elapsed.Round(time.Millisecond), perDelivery)
	// Everything in this process allocates here: the four services, the
	// embedded nats-server, and the test's publisher, receiver and spy.
	t.Logf("allocations in the test process: %.0f per delivery, %.1f KiB per delivery",
		float64(memAfter.Mallocs-memBefore.Mallocs)/events, float64(memAfter.TotalAlloc-memBefore.TotalAlloc)/events/1024)
	if perDelivery > 40 {
		t.Errorf("%.2f NATS messages per delivery, want at most 40", perDelivery)
	}
}

// waitStream waits until a stream holds at least n messages.
func waitStream(t *testing.T, js jetstream.JetStream, name string, n uint64) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, func() error {
		if got := streamMsgs(t, js, name); got < n {
			return fmt.Errorf("%s holds %d messages, want %d", name, got, n)
		}
		return nil
	})
}
