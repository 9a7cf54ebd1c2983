package retryq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/embedded"
	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// servers runs f against a real redis-server, a Redis Cluster of three
// redis-servers, and the in-process server the standalone binary uses, so
// the scripts work on all.
func servers(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient)) {
	t.Run("redis-server", func(t *testing.T) {
		f(t, testenv.StartRedis(t).Client(t))
	})
	t.Run("redis-cluster", func(t *testing.T) {
		rdb, _, err := redisconn.New(testenv.StartRedisCluster(t).URL(), redisconn.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		f(t, rdb)
	})
	t.Run("in-process", func(t *testing.T) {
		m, err := embedded.StartRedis("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		c := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		f(t, c)
	})
}

func newQueue(t *testing.T, rdb redis.UniversalClient, partitions int) *Queue {
	t.Helper()
	q, err := New(rdb, Options{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// endpointIn returns a new endpoint id of partition p.
func endpointIn(p, partitions int) string {
	for {
		if ep := ids.New(ids.Endpoint); streams.Partition(ep, partitions) == p {
			return ep
		}
	}
}

func TestScheduleClaimDone(t *testing.T) {
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		q := newQueue(t, rdb, 4)
		ep := endpointIn(2, 4)
		base := time.UnixMilli(1_800_000_000_000)
		// Scheduled out of order; two share a due time and sort by sequence.
		items := []Entry{
			{Item{Seq: 30, Endpoint: ep, Attempt: 1, Hops: 1}, base.Add(3 * time.Second)},
			{Item{Seq: 20, Endpoint: ep, Attempt: 2, Hops: 2}, base.Add(time.Second)},
			{Item{Seq: 10, Endpoint: ep, Attempt: 1, Hops: 1}, base.Add(time.Second)},
			{Item{Seq: 40, Endpoint: ep, Attempt: 1, Hops: 1, Flags: 1}, base.Add(time.Hour)},
		}
		if err := q.ScheduleMany(ctx, items[:3]); err != nil {
			t.Fatal(err)
		}
		if err := q.Schedule(ctx, items[3].Item, items[3].Due); err != nil {
			t.Fatal(err)
		}
		if n, err := q.Len(ctx, 2); err != nil || n != 4 {
			t.Fatalf("Len(2) = %d, %v; want 4", n, err)
		}
		next, err := q.NextDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !next[2].Equal(base.Add(time.Second)) || !next[0].IsZero() {
			t.Errorf("NextDue = %v, want partition 2 at %v and the others empty", next, base.Add(time.Second))
		}

		// Nothing is due before its time.
		res, err := q.Claim(ctx, 2, base, 10, time.Minute)
		if err != nil || len(res.Items) != 0 {
			t.Fatalf("Claim before due = %+v, %v; want nothing", res, err)
		}
		now := base.Add(5 * time.Second)
		res, err = q.Claim(ctx, 2, now, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, c := range res.Items {
			got = append(got, c.Seq)
		}
		if fmt.Sprint(got) != "[10 20 30]" {
			t.Errorf("claimed sequences %v, want [10 20 30] (due order, ties by sequence)", got)
		}
		if len(res.Items) == 3 && (!res.Items[0].Due.Equal(base.Add(time.Second)) || res.Items[1].Item != items[1].Item) {
			t.Errorf("claimed %+v, want the items as scheduled with their due times", res.Items)
		}
		if want := now.Add(time.Minute); !res.NextDue.Equal(want) {
			t.Errorf("NextDue after claim = %v, want %v (the end of the lease)", res.NextDue, want)
		}
		// Leased: not claimable again until the lease ends.
		if again, err := q.Claim(ctx, 2, now.Add(59*time.Second), 10, time.Minute); err != nil || len(again.Items) != 0 {
			t.Errorf("Claim within the lease = %+v, %v; want nothing", again.Items, err)
		}
		if err := q.Done(ctx, res.Items[:2]...); err != nil {
			t.Fatal(err)
		}
		// After the lease only the item not Done comes back.
		again, err := q.Claim(ctx, 2, now.Add(61*time.Second), 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Items) != 1 || again.Items[0].Seq != 30 {
			t.Errorf("Claim after the lease = %+v, want only sequence 30", again.Items)
		}
		if err := q.Done(ctx, again.Items...); err != nil {
			t.Fatal(err)
		}
		if n, _ := q.Len(ctx, 2); n != 1 {
			t.Errorf("Len after Done = %d, want 1 (the item due in an hour)", n)
		}
	})
}

// TestResendAndOriginalAreSeparateItems: the retries of a delivery and of
// a resend of it, at the same attempt and hops, are two items; each is
// claimed with its resend id and done on its own.
func TestResendAndOriginalAreSeparateItems(t *testing.T) {
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		q := newQueue(t, rdb, 1)
		ep := ids.New(ids.Endpoint)
		base := time.UnixMilli(1_800_000_000_000)
		original := Item{Seq: 7, Endpoint: ep, Attempt: 1, Hops: 1}
		resent := original
		resent.ResendID = "rsnd_01HZX3Q6M0V8TB5R3K2J9N4W7C"
		if err := q.Schedule(ctx, original, base); err != nil {
			t.Fatal(err)
		}
		if err := q.Schedule(ctx, resent, base.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if n, err := q.Len(ctx, 0); err != nil || n != 2 {
			t.Fatalf("Len = %d, %v; want 2 (the original's retry and the resend's)", n, err)
		}
		res, err := q.Claim(ctx, 0, base.Add(2*time.Second), 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 2 || res.Items[0].Item != original || res.Items[1].Item != resent {
			t.Fatalf("claimed %+v, want the original's item then the resend's", res.Items)
		}
		if err := q.Done(ctx, res.Items[1]); err != nil {
			t.Fatal(err)
		}
		if n, _ := q.Len(ctx, 0); n != 1 {
			t.Errorf("Len after the resend's Done = %d, want 1 (the original's)", n)
		}
	})
}

func TestClaimRemovesMalformedMembers(t *testing.T) {
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		q := newQueue(t, rdb, 1)
		if err := rdb.ZAdd(ctx, q.Key(0), redis.Z{Score: 1, Member: "\x09garbage"}).Err(); err != nil {
			t.Fatal(err)
		}
		if err := q.Schedule(ctx, Item{Seq: 5, Endpoint: ids.New(ids.Endpoint)}, time.UnixMilli(2)); err != nil {
			t.Fatal(err)
		}
		res, err := q.Claim(ctx, 0, time.UnixMilli(10), 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Items) != 1 || res.Malformed != 1 {
			t.Errorf("Claim = %d items, %d malformed; want 1 and 1", len(res.Items), res.Malformed)
		}
		if n, _ := q.Len(ctx, 0); n != 1 {
			t.Errorf("Len = %d, want 1 (the malformed member removed)", n)
		}
	})
}

// TestConcurrentClaimersTakeEachItemOnce has several claimers race over one
// partition: within a lease every item is claimed exactly once.
func TestConcurrentClaimersTakeEachItemOnce(t *testing.T) {
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		q := newQueue(t, rdb, 1)
		const n = 3000
		ep := ids.New(ids.Endpoint)
		now := time.Now()
		entries := make([]Entry, n)
		for i := range entries {
			entries[i] = Entry{Item{Seq: uint64(i + 1), Endpoint: ep, Attempt: 1, Hops: 1}, now.Add(-time.Duration(i) * time.Millisecond)}
		}
		if err := q.ScheduleMany(ctx, entries); err != nil {
			t.Fatal(err)
		}
		var (
			mu   sync.Mutex
			seen = map[uint64]int{}
			wg   sync.WaitGroup
		)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					res, err := q.Claim(ctx, 0, now, 37, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(res.Items) == 0 {
						return
					}
					mu.Lock()
					for _, c := range res.Items {
						seen[c.Seq]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Errorf("%d distinct items claimed, want %d", len(seen), n)
		}
		for seq, k := range seen {
			if k != 1 {
				t.Errorf("item %d claimed %d times within its lease, want once", seq, k)
			}
		}
	})
}

// TestMemoryAndClaimRate measures, on a real redis-server, the memory per
// scheduled item and the rate of claims. The figures are logged; only a
// generous bound is asserted (the benchmark holds the real bar: ≤ 300 bytes,
// ≥ 20,000 claims/s).
func TestMemoryAndClaimRate(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	rdb := testenv.StartRedis(t).Client(t)
	ctx := context.Background()
	const partitions, n = 8, 100_000
	q := newQueue(t, rdb, partitions)
	before := usedMemory(t, rdb)
	eps := make([]string, 1000)
	for i := range eps {
		eps[i] = ids.New(ids.Endpoint)
	}
	now := time.Now()
	batch := make([]Entry, 0, 1000)
	for i := 0; i < n; i++ {
		batch = append(batch, Entry{
			Item: Item{Seq: uint64(10_000_000 + i), Endpoint: eps[i%len(eps)], Attempt: uint32(1 + i%7), Hops: uint32(1 + i%9)},
			Due:  now.Add(-time.Duration(i%60_000) * time.Millisecond),
		})
		if len(batch) == cap(batch) {
			if err := q.ScheduleMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	var total int64
	for p := 0; p < partitions; p++ {
		k, err := q.Len(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		total += k
	}
	if total != n {
		t.Fatalf("%d items stored, want %d", total, n)
	}
	perItem := float64(usedMemory(t, rdb)-before) / n
	t.Logf("memory: %.1f bytes per scheduled item (used_memory delta over %d items)", perItem, n)
	if perItem > 400 {
		t.Errorf("%.1f bytes per item, want well under 400", perItem)
	}

	start := time.Now()
	claimed := 0
	for p := 0; p < partitions; p++ {
		for {
			res, err := q.Claim(ctx, p, now, 500, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Items) == 0 {
				break
			}
			claimed += len(res.Items)
			if err := q.Done(ctx, res.Items...); err != nil {
				t.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	if claimed != n {
		t.Errorf("claimed %d items, want %d", claimed, n)
	}
	t.Logf("claim+done: %d items in %v, %.0f items/s (one claimer, batches of 500)", claimed, elapsed.Round(time.Millisecond), float64(claimed)/elapsed.Seconds())
}

// usedMemory returns INFO memory's used_memory.
func usedMemory(t *testing.T, rdb redis.UniversalClient) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("INFO memory has no used_memory")
	return 0
}

func TestLens(t *testing.T) {
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		q := newQueue(t, rdb, 4)
		due := time.UnixMilli(1_800_000_000_000)
		want := []int64{2, 0, 3, 1}
		var entries []Entry
		seq := uint64(1)
		for p, n := range want {
			ep := endpointIn(p, 4)
			for range n {
				entries = append(entries, Entry{Item{Seq: seq, Endpoint: ep, Attempt: 1, Hops: 1}, due})
				seq++
			}
		}
		if err := q.ScheduleMany(ctx, entries); err != nil {
			t.Fatal(err)
		}
		got, err := q.Lens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Lens = %v, want %v", got, want)
		}
	})
}
