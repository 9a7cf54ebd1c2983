package fanout

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/health"
)

// TestLivenessOfTheConsumeLoop checks the consume loop's pending test on a
// real consumer: events not yet pulled are pending; once fanned out the
// idle loop stays live past the limit.
func TestLivenessOfTheConsumeLoop(t *testing.T) {
	const stuckAfter = 300 * time.Millisecond
	h := newHarness(t, false)
	tenant := newTenant()
	ep := newEndpoint(tenant.GetId())
	h.config.push(upsertTenant(tenant), upsertEndpoint(ep))
	live := health.NewLiveness(stuckAfter)
	svc, err := New(context.Background(), testConfig(), Deps{
		NATS:     h.nats.Conn(t),
		Config:   h.client,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
		Liveness: live,
	})
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	for range 3 {
		seq = h.publishEvent(newEvent(tenant.GetId(), "job.completed"), nil)
	}
	if pending, err := svc.eventsPending(context.Background()); err != nil || !pending {
		t.Fatalf("eventsPending with 3 events not pulled = %v, %v; want true", pending, err)
	}

	h.run(svc)
	h.waitReady(svc)
	h.waitSettled(seq)
	if pending, err := svc.eventsPending(context.Background()); err != nil || pending {
		t.Fatalf("eventsPending after the fan-out = %v, %v; want false", pending, err)
	}
	if got := len(h.deliveries()); got != 3 {
		t.Errorf("stored %d deliveries, want 3", got)
	}
	// Idle with nothing pending, for three times the limit: live.
	for deadline := time.Now().Add(3 * stuckAfter); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := live.Check(context.Background()); err != nil {
			t.Fatalf("Check of an idle fanout with nothing pending = %v, want nil", err)
		}
	}
}
