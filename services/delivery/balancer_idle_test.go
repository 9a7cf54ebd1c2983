package delivery

import (
	"context"
	"testing"
	"time"
)

// TestIdleWorkerKeepsOneMembersWatch checks that an idle worker's watch of
// the members bucket stays open. The watch used to be started under
// streams.Retry's per-try context, which Retry cancels as soon as the try
// succeeds; nats.go unsubscribes a watch whose context ends, so the
// balancer started a new watch (a consumer create and delete in
// nats-server) in a tight loop for as long as it ran.
func TestIdleWorkerKeepsOneMembersWatch(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig()
	cfg.PollInterval = 250 * time.Millisecond
	e.startWorker(t, cfg, workerOptions{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before, err := e.js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const window = 3 * time.Second
	time.Sleep(window)
	after, err := e.js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// At rest a worker asks JetStream's API for nothing but the odd
	// consumer or stream info; lease renewals and member writes are KV
	// publishes, not API requests. A watch restarted in a loop makes
	// hundreds of consumer creates a second.
	requests := after.API.Total - before.API.Total
	t.Logf("JetStream API requests in %v at rest: %d; consumers %d → %d", window, requests, before.Consumers, after.Consumers)
	if requests > 30 {
		t.Errorf("an idle worker made %d JetStream API requests in %v, want at most 30 (is the members watch restarted in a loop?)", requests, window)
	}
}
