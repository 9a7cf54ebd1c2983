package retryq

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
)

// TestDueNowMovesOnlyTheEndpointsUnleasedItems schedules items of two
// endpoints of one partition hours ahead, leases some of the first's, and
// checks that DueNow moves exactly the first's unleased ones (and counts
// those due already), leaves the leased ones and the other endpoint's where
// they were, and skips what skip excludes.
func TestDueNowMovesOnlyTheEndpointsUnleasedItems(t *testing.T) {
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		q := newQueue(t, rdb, 4)
		a, b := endpointIn(1, 4), endpointIn(1, 4)
		now := time.Now().Truncate(time.Millisecond)
		later := now.Add(3 * time.Hour)
		var entries []Entry
		for i := range 7 {
			entries = append(entries, Entry{Item{Seq: uint64(100 + i), Endpoint: a, Attempt: 2, Hops: 2}, later.Add(time.Duration(i) * time.Minute)})
		}
		for i := range 5 {
			entries = append(entries, Entry{Item{Seq: uint64(200 + i), Endpoint: b, Attempt: 2, Hops: 2}, later})
		}
		// Two of a's are due already and get claimed (leased for an
		// hour); one more is due already and not claimed; one is a
		// resend, which skip excludes below.
		entries = append(entries,
			Entry{Item{Seq: 1, Endpoint: a, Attempt: 1, Hops: 1}, now.Add(-2 * time.Second)},
			Entry{Item{Seq: 2, Endpoint: a, Attempt: 1, Hops: 1}, now.Add(-2 * time.Second)},
			Entry{Item{Seq: 300, Endpoint: a, Attempt: 1, Hops: 1, ResendID: "rsnd_x"}, later},
		)
		if err := q.ScheduleMany(ctx, entries); err != nil {
			t.Fatal(err)
		}
		claimed, err := q.Claim(ctx, 1, now.Add(-time.Second), 10, time.Hour)
		if err != nil || len(claimed.Items) != 2 {
			t.Fatalf("Claim = %+v, %v; want the 2 items due", claimed.Items, err)
		}
		if err := q.Schedule(ctx, Item{Seq: 3, Endpoint: a, Attempt: 1, Hops: 1}, now.Add(-time.Second)); err != nil {
			t.Fatal(err)
		}

		skipResends := func(it Item) bool { return it.ResendID != "" }
		n, err := q.DueNow(ctx, a, now, skipResends)
		if err != nil {
			t.Fatal(err)
		}
		if n != 8 {
			t.Errorf("DueNow = %d, want 8 (a's 7 scheduled later and 1 due already; not the 2 leased, not the skipped resend)", n)
		}
		res, err := q.Claim(ctx, 1, now, 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint64]bool{}
		for _, c := range res.Items {
			if c.Endpoint != a {
				t.Errorf("claimed %+v of another endpoint", c.Item)
			}
			got[c.Seq] = true
		}
		want := map[uint64]bool{3: true, 100: true, 101: true, 102: true, 103: true, 104: true, 105: true, 106: true}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("claimed after DueNow %v, want %v", got, want)
		}
		// The leased two still hold their lease, b's and the resend their
		// due times.
		for _, c := range claimed.Items {
			s, err := rdb.ZScore(ctx, q.Key(1), c.member).Result()
			if err != nil || s != leaseScore(now.Add(-time.Second).Add(time.Hour)) {
				t.Errorf("leased item %d scored %v, %v; want its lease end", c.Seq, s, err)
			}
		}
		for _, e := range entries {
			if e.Item.Endpoint != b && e.Item.ResendID == "" {
				continue
			}
			m, _ := Encode(e.Item)
			s, err := rdb.ZScore(ctx, q.Key(1), m).Result()
			if err != nil || s != score(e.Due) {
				t.Errorf("item %d scored %v, %v; want %v (untouched)", e.Item.Seq, s, err, score(e.Due))
			}
		}
		// Nothing of an endpoint with nothing scheduled; bad input refused.
		if n, err := q.DueNow(ctx, endpointIn(1, 4), now, nil); err != nil || n != 0 {
			t.Errorf("DueNow of an endpoint with nothing scheduled = %d, %v; want 0", n, err)
		}
		if _, err := q.DueNow(ctx, "", now, nil); err == nil {
			t.Error("DueNow of no endpoint succeeded")
		}
	})
}

// TestDueNowDoesNotDoubleConcurrentClaims runs DueNow while claimers keep
// claiming the partition: every item is claimed exactly once (DueNow never
// makes a leased item due again) and each is either claimed as due or was
// made due by DueNow.
func TestDueNowDoesNotDoubleConcurrentClaims(t *testing.T) {
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		q := newQueue(t, rdb, 1)
		ep := ids.New(ids.Endpoint)
		const n = 2000
		now := time.Now()
		entries := make([]Entry, n)
		for i := range entries {
			due := now.Add(-time.Duration(i) * time.Millisecond) // half due now…
			if i%2 == 1 {
				due = now.Add(2 * time.Hour) // …half in two hours
			}
			entries[i] = Entry{Item{Seq: uint64(i + 1), Endpoint: ep, Attempt: 1, Hops: 1}, due}
		}
		if err := q.ScheduleMany(ctx, entries); err != nil {
			t.Fatal(err)
		}
		var (
			mu      sync.Mutex
			seen    = map[uint64]int{}
			wg      sync.WaitGroup
			stopped atomic.Bool
		)
		for range 4 {
			wg.Go(func() {
				for {
					res, err := q.Claim(ctx, 0, time.Now(), 23, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, c := range res.Items {
						seen[c.Seq]++
					}
					mu.Unlock()
					if len(res.Items) == 0 && stopped.Load() {
						return
					}
				}
			})
		}
		moved, err := q.DueNow(ctx, ep, time.Now(), nil)
		stopped.Store(true)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Errorf("%d distinct items claimed, want %d", len(seen), n)
		}
		for seq, k := range seen {
			if k != 1 {
				t.Errorf("item %d claimed %d times, want once", seq, k)
			}
		}
		if moved < n/2 || moved > n {
			t.Errorf("DueNow = %d, want between %d (the items due later) and %d", moved, n/2, n)
		}
	})
}
