// Package count compares what the load generator sent with what the
// receiver got, exactly: every acknowledged event must reach every endpoint
// subscribed to its tenant once. It reports lost, duplicate and unexpected
// deliveries and the end-to-end latency of each delivery.
package count

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/records"
)

// sampleSize is how many keys of each kind of mistake a Result lists.
const sampleSize = 10

// Key is one delivery: a message to an endpoint.
type Key struct {
	ID       string `json:"id"`
	Endpoint string `json:"endpoint"`
}

// Result is the outcome of a comparison.
type Result struct {
	// Expected is the number of deliveries that must happen: each
	// acknowledged event times the endpoints subscribed to its tenant.
	Expected int `json:"expected"`
	// Delivered is the number of expected deliveries received (answered 2xx)
	// at least once.
	Delivered int `json:"deliveries"`
	// Lost is Expected minus Delivered.
	Lost int `json:"lost"`
	// Duplicates counts 2xx receipts beyond the first of an expected delivery.
	Duplicates int `json:"duplicates"`
	// Unexpected counts 2xx receipts of deliveries nobody expected: an id
	// never acknowledged, or an endpoint not subscribed to the tenant.
	Unexpected int `json:"unexpected"`
	// FailedAttempts counts receipts answered with a non-2xx status (or not
	// answered) on endpoints that are counted; they are not deliveries.
	FailedAttempts int `json:"failed_attempts"`
	// Ignored counts receipts of endpoints the caller excluded from counting.
	Ignored int `json:"ignored"`
	// LostSample, DuplicateSample and UnexpectedSample list a few of each.
	LostSample       []Key `json:"lost_sample,omitempty"`
	DuplicateSample  []Key `json:"duplicate_sample,omitempty"`
	UnexpectedSample []Key `json:"unexpected_sample,omitempty"`
	// Latencies are, for each delivery, the time from the event's
	// acknowledgement to its first 2xx receipt, sorted ascending. A receipt
	// earlier than the acknowledgement (the two clocks are the same, but the
	// publisher's goroutine may be scheduled late) counts as 0.
	Latencies []time.Duration `json:"-"`
	// FromSend are, for each delivery, the time from the start of the
	// publish to the first 2xx receipt (an upper bound of the latency that
	// includes ingest's own work), sorted ascending.
	FromSend []time.Duration `json:"-"`
	// Early counts the deliveries received before the publisher saw the ack.
	Early int `json:"early"`
	// FirstSent is the earliest publish start and LastReceived the latest
	// 2xx receipt of an expected delivery, in Unix nanoseconds.
	FirstSent    int64 `json:"-"`
	LastReceived int64 `json:"-"`
}

// Exact reports whether nothing was lost, duplicated or unexpected.
func (r Result) Exact() bool { return r.Lost == 0 && r.Duplicates == 0 && r.Unexpected == 0 }

// slot is the state of one expected delivery.
type slot struct {
	sent     int64 // when its event's publish started
	ack      int64 // when its event was acknowledged
	received int64 // its first 2xx receipt
	n        int   // its 2xx receipts
}

// Count compares acks with got. subscribers maps each tenant to the names of
// the endpoints that must receive every event published for it. Receipts
// of endpoints in ignore are counted only in Ignored (endpoints made to
// fail on purpose).
func Count(acks []records.Ack, subscribers map[string][]string, got []records.Receipt, ignore map[string]bool) Result {
	var res Result
	want := make(map[Key]*slot, len(acks))
	for _, a := range acks {
		if res.FirstSent == 0 || a.Sent < res.FirstSent {
			res.FirstSent = a.Sent
		}
		for _, ep := range subscribers[a.Tenant] {
			want[Key{a.ID, ep}] = &slot{sent: a.Sent, ack: a.At}
		}
	}
	res.Expected = len(want)
	// Receipts in arrival order, so the first receipt of a key is the
	// delivery and later ones are duplicates.
	got = slices.Clone(got)
	sort.SliceStable(got, func(i, j int) bool { return got[i].At < got[j].At })
	for _, r := range got {
		switch {
		case ignore[r.Endpoint]:
			res.Ignored++
			continue
		case !r.OK():
			res.FailedAttempts++
			continue
		}
		k := Key{r.ID, r.Endpoint}
		s, ok := want[k]
		switch {
		case !ok:
			res.Unexpected++
			res.UnexpectedSample = appendSample(res.UnexpectedSample, k)
		case s.n > 0:
			s.n++
			res.Duplicates++
			res.DuplicateSample = appendSample(res.DuplicateSample, k)
		default:
			s.n = 1
			s.received = r.At
		}
	}
	res.Latencies = make([]time.Duration, 0, len(want))
	res.FromSend = make([]time.Duration, 0, len(want))
	var lost []Key
	for k, s := range want {
		if s.n == 0 {
			res.Lost++
			lost = append(lost, k)
			continue
		}
		res.Delivered++
		res.LastReceived = max(res.LastReceived, s.received)
		d := time.Duration(s.received - s.ack)
		if d < 0 {
			res.Early++
			d = 0
		}
		res.Latencies = append(res.Latencies, d)
		res.FromSend = append(res.FromSend, time.Duration(max(s.received-s.sent, 0)))
	}
	// A stable sample: the smallest keys.
	slices.SortFunc(lost, func(a, b Key) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Endpoint, b.Endpoint)
	})
	res.LostSample = lost[:min(len(lost), sampleSize)]
	slices.Sort(res.Latencies)
	slices.Sort(res.FromSend)
	return res
}

func appendSample(s []Key, k Key) []Key {
	if len(s) < sampleSize {
		s = append(s, k)
	}
	return s
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method, or 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999999) - 1
	rank = min(max(rank, 0), len(sorted)-1)
	return sorted[rank]
}
