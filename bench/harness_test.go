package bench_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/count"
	"github.com/pulsehooks/pulsehooks/bench/internal/harness"
)

// TestHarnessCountsATinyRunExactly runs the whole harness once on a tiny
// load — the real standalone binary, receiver and load generator as their
// own processes, a redis-server when one is installed — and checks that it
// counts exactly: every delivery once, and a delivery taken out afterwards
// is reported lost. It asserts nothing about timing.
func TestHarnessCountsATinyRunExactly(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root with go.work not found at %s: %v", root, err)
	}
	var log bytes.Buffer
	h, err := harness.New(harness.Options{
		Root:      root,
		BinDir:    t.TempDir(), // not bench/.bin, which a concurrent make bench may be writing
		Scenarios: []string{"smoke"},
		Tiny:      true,
		Results:   t.TempDir(),
		Work:      t.TempDir(),
		Keep:      true,
		Command:   "go test ./bench",
		Log:       &log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	results, err := h.Run(ctx)
	t.Logf("harness log:\n%s", log.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(results) != 1 {
		t.Fatalf("got %d results, want 1", len(results))
	}
	r := results[0]
	if r.Status != harness.StatusOK || r.Lost != 0 || r.Duplicates != 0 || r.Unexpected != 0 || r.BadSignatures != 0 {
		t.Fatalf("smoke result: status %s (%s), %d lost, %d duplicates, %d unexpected, %d bad signatures; want ok and exact",
			r.Status, r.Reason, r.Lost, r.Duplicates, r.Unexpected, r.BadSignatures)
	}
	// 300 events to 3 tenants with 2 counted endpoints each.
	if r.Accepted != 300 || r.Expected != 600 || r.Deliveries != 600 {
		t.Errorf("accepted %d, expected %d, delivered %d; want 300, 600, 600", r.Accepted, r.Expected, r.Deliveries)
	}
	// Every counted delivery is measured from its event's stored time in
	// EVENTS, which JetStream took before ingest's reply.
	if n, _ := r.Extra["from_store_deliveries"].(int); n != 600 || r.Extra["from_store_missing"] != nil {
		t.Errorf("from the store: %v deliveries measured, %v without a stored time; want 600 and none", r.Extra["from_store_deliveries"], r.Extra["from_store_missing"])
	}
	if r.P99MsFromStore <= 0 || r.P50MsFromStore > r.P99MsFromStore {
		t.Errorf("p50_ms_from_store %v, p99_ms_from_store %v: want p99 > 0 and p50 ≤ p99", r.P50MsFromStore, r.P99MsFromStore)
	}
	if _, err := os.Stat(filepath.Join(h.ResultsDir(), "smoke.json")); err != nil {
		t.Errorf("results file: %v", err)
	}

	// The same data, with one receipt taken out and one repeated: the
	// counting code must see both.
	d := r.Data
	if d == nil || len(d.Receipts) == 0 {
		t.Fatal("no receipts in the result")
	}
	var dropped count.Key
	receipts := d.Receipts[:0:0]
	for _, rc := range d.Receipts {
		if dropped.ID == "" && rc.OK() && !d.Ignore[rc.Endpoint] {
			dropped = count.Key{ID: rc.ID, Endpoint: rc.Endpoint}
			continue
		}
		receipts = append(receipts, rc)
	}
	c := count.Count(d.Acks, d.Subscribers, receipts, d.Ignore)
	if c.Lost != 1 || len(c.LostSample) != 1 || c.LostSample[0] != dropped {
		t.Errorf("after dropping %v: lost %d %v, want exactly that one", dropped, c.Lost, c.LostSample)
	}
	dup := receipts[len(receipts)-1]
	for i := len(receipts) - 1; i >= 0 && (!dup.OK() || d.Ignore[dup.Endpoint]); i-- {
		dup = receipts[i]
	}
	c = count.Count(d.Acks, d.Subscribers, append(receipts, dup), d.Ignore)
	if c.Duplicates != 1 || c.Lost != 1 {
		t.Errorf("after repeating %s to %s: %d duplicates, %d lost; want 1 and 1", dup.ID, dup.Endpoint, c.Duplicates, c.Lost)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("the harness ran into the test's deadline")
	}
}
