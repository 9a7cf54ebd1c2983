package harness

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
)

// scheduleBench measures the retry schedule (pkg/retryq) against the
// system's redis-server, under its own key prefix: the memory of n waiting
// deliveries, how fast claimers drain n overdue items, and how late items
// are claimed when n come due over a window while claimers poll.
type scheduleBench struct {
	rdb        redis.UniversalClient
	n          int
	endpoints  int
	partitions int
	claimLimit int
	lease      time.Duration
	window     time.Duration
	logf       func(string, ...any)
}

// scheduleResult is what scheduleBench measured.
type scheduleResult struct {
	Items           int     `json:"items"`
	BytesPerItem    float64 `json:"redis_bytes_per_waiting_delivery"`
	FillPerS        float64 `json:"fill_per_s"`
	ClaimedPerS     float64 `json:"claimed_per_s_overdue"`
	WindowS         float64 `json:"due_window_s"`
	DueRatePerS     float64 `json:"due_rate_per_s"`
	LatenessP50Ms   float64 `json:"lateness_p50_ms"`
	LatenessP99Ms   float64 `json:"lateness_p99_ms"`
	LatenessMaxMs   float64 `json:"lateness_max_ms"`
	ClaimedInWindow int     `json:"claimed_in_window"`
	Claimers        int     `json:"claimers"`
	ClaimLimit      int     `json:"claim_limit"`
}

const scheduleBenchPrefix = "bench:retry"

func (b scheduleBench) run(ctx context.Context) (scheduleResult, error) {
	res := scheduleResult{Items: b.n, Claimers: b.partitions, ClaimLimit: b.claimLimit, WindowS: b.window.Seconds()}
	q, err := retryq.New(b.rdb, retryq.Options{Prefix: scheduleBenchPrefix, Partitions: b.partitions})
	if err != nil {
		return res, err
	}
	defer b.clean(context.WithoutCancel(ctx), q)
	b.clean(ctx, q)
	eps := make([]string, b.endpoints)
	for i := range eps {
		eps[i] = ids.New(ids.Endpoint)
	}
	item := func(k int) retryq.Item {
		// Events by sequence, each failed at every endpoint once.
		return retryq.Item{Seq: uint64(1_000_000 + k/b.endpoints), Endpoint: eps[k%b.endpoints], Attempt: 1, Hops: 1}
	}

	// 1. Memory and claim throughput: n items, all overdue.
	mem0, err := usedMemory(ctx, b.rdb)
	if err != nil {
		return res, err
	}
	past := time.Now().Add(-time.Second)
	took, err := b.fill(ctx, q, item, func(int) time.Time { return past })
	if err != nil {
		return res, err
	}
	res.FillPerS = round(float64(b.n) / took.Seconds())
	mem1, err := usedMemory(ctx, b.rdb)
	if err != nil {
		return res, err
	}
	res.BytesPerItem = round(float64(mem1-mem0) / float64(b.n))
	b.logf("  schedule: %d items stored in %v (%.0f/s), %.1f bytes each in Redis", b.n, took.Round(time.Millisecond), res.FillPerS, res.BytesPerItem)
	started := time.Now()
	claimed, _, err := b.claimAll(ctx, q, func(c int) bool { return c >= b.n }, 2*time.Minute)
	if err != nil {
		return res, err
	}
	res.ClaimedPerS = round(float64(claimed) / time.Since(started).Seconds())
	b.logf("  schedule: %d overdue items claimed and done in %v (%.0f/s)", claimed, time.Since(started).Round(time.Millisecond), res.ClaimedPerS)

	// 2. Lateness: n items due evenly over the window, which starts once
	// they are all stored; claimers poll throughout, as workers do.
	start := time.Now().Add(2*took + 2*time.Second)
	step := b.window / time.Duration(b.n)
	res.DueRatePerS = round(float64(b.n) / b.window.Seconds())
	if _, err := b.fill(ctx, q, item, func(k int) time.Time { return start.Add(time.Duration(k) * step) }); err != nil {
		return res, err
	}
	if wait := time.Until(start); wait < 0 {
		return res, fmt.Errorf("storing the items took longer than planned (%v late)", -wait)
	}
	n, late, err := b.claimAll(ctx, q, func(c int) bool { return c >= b.n }, b.window+2*time.Minute)
	if err != nil {
		return res, err
	}
	res.ClaimedInWindow = n
	slices.Sort(late)
	if len(late) > 0 {
		res.LatenessP50Ms = round(float64(late[len(late)/2]) / 1e6)
		res.LatenessP99Ms = round(float64(late[min(len(late)*99/100, len(late)-1)]) / 1e6)
		res.LatenessMaxMs = round(float64(late[len(late)-1]) / 1e6)
	}
	b.logf("  schedule: %d items due over %v claimed with lateness p50 %.1f ms, p99 %.1f ms, max %.1f ms", n, b.window, res.LatenessP50Ms, res.LatenessP99Ms, res.LatenessMaxMs)
	return res, nil
}

// fill stores b.n items with ScheduleMany in batches, 4 batches in flight.
func (b scheduleBench) fill(ctx context.Context, q *retryq.Queue, item func(int) retryq.Item, due func(int) time.Time) (time.Duration, error) {
	const batch = 5000
	started := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for from := 0; from < b.n; from += batch {
		g.Go(func() error {
			entries := make([]retryq.Entry, 0, batch)
			for k := from; k < min(from+batch, b.n); k++ {
				entries = append(entries, retryq.Entry{Item: item(k), Due: due(k)})
			}
			return q.ScheduleMany(gctx, entries)
		})
	}
	err := g.Wait()
	return time.Since(started), err
}

// claimAll runs one claimer per partition — claim up to claimLimit due
// items, mark them done, poll again after 10 ms when none was due — until
// enough(claimed) or timeout, and returns the count and each item's
// lateness (claim time minus due time).
func (b scheduleBench) claimAll(ctx context.Context, q *retryq.Queue, enough func(int) bool, timeout time.Duration) (int, []time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		total atomic.Int64
		mu    sync.Mutex
		late  = make([]time.Duration, 0, b.n)
	)
	g, gctx := errgroup.WithContext(ctx)
	for p := 0; p < b.partitions; p++ {
		g.Go(func() error {
			var local []time.Duration
			defer func() {
				mu.Lock()
				late = append(late, local...)
				mu.Unlock()
			}()
			for !enough(int(total.Load())) {
				now := time.Now()
				r, err := q.Claim(gctx, p, now, b.claimLimit, b.lease)
				if err != nil {
					if gctx.Err() != nil {
						return nil
					}
					return err
				}
				if len(r.Items) == 0 {
					select {
					case <-gctx.Done():
						return nil
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				for _, it := range r.Items {
					local = append(local, now.Sub(it.Due))
				}
				if err := q.Done(gctx, r.Items...); err != nil {
					return err
				}
				total.Add(int64(len(r.Items)))
			}
			return nil
		})
	}
	err := g.Wait()
	n := int(total.Load())
	if err == nil && !enough(n) {
		err = fmt.Errorf("claimed %d of %d items within %v", n, b.n, timeout)
	}
	return n, late, err
}

// clean deletes the benchmark's keys.
func (b scheduleBench) clean(ctx context.Context, q *retryq.Queue) {
	keys := make([]string, q.Partitions())
	for p := range keys {
		keys[p] = q.Key(p)
	}
	_ = b.rdb.Del(ctx, keys...).Err()
}
