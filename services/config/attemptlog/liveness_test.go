package attemptlog

import (
	"context"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// TestIndexerLiveness checks the indexer loops' pending test on real
// streams — messages past the stored position are work pending — and that
// a caught-up, idle indexer stays live past the limit.
func TestIndexerLiveness(t *testing.T) {
	const stuckAfter = 300 * time.Millisecond
	e := newStreamsEnv(t)
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var last uint64
	for range 3 {
		_, last = e.publishEvent("ten_a", "job.completed", time.Now())
	}
	ix := NewIndexer(s, e.js, nil)
	if behind, err := ix.Behind(context.Background(), streams.Events); err != nil || !behind {
		t.Fatalf("Behind with 3 events not indexed = %v, %v; want true", behind, err)
	}

	live := health.NewLiveness(stuckAfter)
	ix.ReportTo(live)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("indexer Run = %v, want nil", err)
		}
	}()
	waitPositions(t, s, last, 0)
	for _, name := range []string{streams.Events, streams.Attempts} {
		if behind, err := ix.Behind(context.Background(), name); err != nil || behind {
			t.Fatalf("Behind on %s once indexed = %v, %v; want false", name, behind, err)
		}
	}
	for deadline := time.Now().Add(3 * stuckAfter); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := live.Check(context.Background()); err != nil {
			t.Fatalf("Check of an idle indexer that has caught up = %v, want nil", err)
		}
	}
}
