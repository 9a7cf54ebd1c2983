package count

import (
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/records"
)

// TestFromStore: in world(), each event is stored 2 ms before its ack, so
// every delivery is 7 ms from the store; a duplicate, a failed attempt, an
// ignored endpoint's receipt and an unexpected one do not count, and an
// event without a stored time is Missing.
func TestFromStore(t *testing.T) {
	acks, subs, got := world()
	stored := map[string]int64{}
	for _, a := range acks {
		stored[a.ID] = a.At - int64(2*time.Millisecond)
	}
	first := got[0]
	got = append(got,
		records.Receipt{ID: first.ID, Endpoint: first.Endpoint, At: first.At + int64(time.Second), Status: 200}, // duplicate
		records.Receipt{ID: first.ID, Endpoint: first.Endpoint, At: first.At - int64(time.Millisecond), Status: 500},
		records.Receipt{ID: first.ID, Endpoint: "ignored", At: first.At + int64(time.Second), Status: 200},
		records.Receipt{ID: "msg_never", Endpoint: first.Endpoint, At: first.At, Status: 200},
	)
	res := FromStore(acks, subs, got, map[string]bool{"ignored": true}, stored)
	if len(res.Latencies) != 24 || res.Early != 0 || res.Missing != 0 {
		t.Fatalf("FromStore: %d latencies, %d early, %d missing; want 24, 0, 0", len(res.Latencies), res.Early, res.Missing)
	}
	if lo, hi := res.Latencies[0], res.Latencies[23]; lo != 7*time.Millisecond || hi != 7*time.Millisecond {
		t.Errorf("latencies from %v to %v, want all 7ms", lo, hi)
	}

	delete(stored, acks[0].ID)
	stored[acks[1].ID] = got[2].At + int64(time.Millisecond) // after its receipts
	res = FromStore(acks, subs, got, nil, stored)
	if len(res.Latencies) != 22 || res.Missing != 2 || res.Early != 2 || res.Latencies[0] != 0 {
		t.Errorf("FromStore: %d latencies (first %v), %d missing, %d early; want 22 (first 0), 2, 2",
			len(res.Latencies), res.Latencies[0], res.Missing, res.Early)
	}
}
