package count

import (
	"slices"
	"sort"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/records"
)

// Stored is the latency of each delivery measured from the moment its event
// was stored: for every expected delivery (as Count defines them) that was
// received, the time from stored[event id] (the JetStream stored time of the
// event in EVENTS, Unix nanoseconds) to its first 2xx receipt.
type Stored struct {
	// Latencies are sorted ascending; a receipt earlier than the stored
	// time (impossible on one clock) counts as 0 and in Early.
	Latencies []time.Duration
	Early     int
	// Missing counts received deliveries whose event has no stored time.
	Missing int
}

// FromStore measures the deliveries in got against stored, counting, like
// Count, only the first 2xx receipt of each expected delivery and nothing of
// the endpoints in ignore.
func FromStore(acks []records.Ack, subscribers map[string][]string, got []records.Receipt, ignore map[string]bool, stored map[string]int64) Stored {
	want := make(map[Key]bool, len(acks))
	for _, a := range acks {
		for _, ep := range subscribers[a.Tenant] {
			want[Key{a.ID, ep}] = false
		}
	}
	got = slices.Clone(got)
	sort.SliceStable(got, func(i, j int) bool { return got[i].At < got[j].At })
	var res Stored
	for _, r := range got {
		k := Key{r.ID, r.Endpoint}
		seen, ok := want[k]
		if ignore[r.Endpoint] || !r.OK() || !ok || seen {
			continue
		}
		want[k] = true
		at, ok := stored[r.ID]
		if !ok {
			res.Missing++
			continue
		}
		d := time.Duration(r.At - at)
		if d < 0 {
			res.Early++
			d = 0
		}
		res.Latencies = append(res.Latencies, d)
	}
	slices.Sort(res.Latencies)
	return res
}
