package health

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultStuckAfter is how long a loop may go without a beat, while it has
// work pending, before liveness fails (PULSEHOOKS_STUCK_AFTER).
const DefaultStuckAfter = 2 * time.Minute

// checkTimeout bounds the pending checks of one Check, which run at once,
// so a probe (the chart's timeout is 2 s) gets its answer in time.
const checkTimeout = time.Second

// Pending reports whether a loop has work waiting for it (messages its
// consumer has not delivered, say). It is asked only about a loop that has
// not beaten for the limit, at most once per cache period and within a
// second, so it may make a round trip. An error counts as nothing pending: a server that cannot be
// asked is not the loop's fault, and restarting the process would not help.
type Pending func(ctx context.Context) (bool, error)

// Always is the Pending of a loop that always has work, such as a poller
// that runs every few hundred milliseconds whether or not there is any.
func Always(context.Context) (bool, error) { return true, nil }

// Liveness is a registry of named work loops. Each loop calls Beat once per
// iteration; Check fails while a loop has not beaten for the limit and has
// work pending. The zero value is not usable; a nil *Liveness registers
// nothing and always passes.
type Liveness struct {
	stuckAfter time.Duration
	cacheFor   time.Duration
	now        func() time.Time

	mu    sync.Mutex
	loops []*Loop
}

// NewLiveness returns a registry that reports a loop stuck once it has not
// beaten for stuckAfter (DefaultStuckAfter if not positive) with work
// pending.
func NewLiveness(stuckAfter time.Duration) *Liveness {
	if stuckAfter <= 0 {
		stuckAfter = DefaultStuckAfter
	}
	return &Liveness{
		stuckAfter: stuckAfter,
		cacheFor:   min(stuckAfter/4, 15*time.Second),
		now:        time.Now,
	}
}

// StuckAfter is the limit the registry applies.
func (l *Liveness) StuckAfter() time.Duration {
	if l == nil {
		return 0
	}
	return l.stuckAfter
}

// Loop registers a work loop under name, as having beaten now. pending nil
// means Always. Close it when the loop ends. On a nil registry it returns a
// Loop whose methods do nothing.
func (l *Liveness) Loop(name string, pending Pending) *Loop {
	if l == nil {
		return nil
	}
	if pending == nil {
		pending = Always
	}
	lp := &Loop{name: name, live: l, pending: pending}
	lp.last.Store(l.now().UnixNano())
	l.mu.Lock()
	l.loops = append(l.loops, lp)
	l.mu.Unlock()
	return lp
}

// Check returns nil while every loop makes progress, and otherwise an error
// naming each stuck loop and how long it has gone without a beat.
func (l *Liveness) Check(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	loops := slices.Clone(l.loops)
	l.mu.Unlock()
	now := l.now()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var (
		mu    sync.Mutex
		stuck []string
		wg    sync.WaitGroup
	)
	for _, lp := range loops {
		idle := now.Sub(time.Unix(0, lp.last.Load()))
		if idle < l.stuckAfter {
			continue
		}
		wg.Go(func() {
			if lp.hasPending(ctx, now) {
				mu.Lock()
				stuck = append(stuck, fmt.Sprintf("%s: no progress for %s with work pending", lp.name, idle.Truncate(time.Second)))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(stuck) == 0 {
		return nil
	}
	slices.Sort(stuck)
	return fmt.Errorf("stuck: %s", strings.Join(stuck, "; "))
}

// Loop is one registered work loop. Its methods are safe for concurrent use
// and do nothing on a nil Loop.
type Loop struct {
	name    string
	live    *Liveness
	pending Pending
	last    atomic.Int64 // Unix ns of the latest beat

	mu        sync.Mutex
	checkedAt time.Time // of the cached pending answer
	cached    bool
}

// Beat records that the loop made progress: it took an item, finished one,
// or woke up to look for work.
func (lp *Loop) Beat() {
	if lp == nil {
		return
	}
	lp.last.Store(lp.live.now().UnixNano())
}

// Close unregisters the loop: a loop that has ended is not stuck.
func (lp *Loop) Close() {
	if lp == nil {
		return
	}
	l := lp.live
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loops = slices.DeleteFunc(l.loops, func(x *Loop) bool { return x == lp })
}

// hasPending asks the loop's Pending, or answers from its cache when it
// asked less than the cache period ago.
func (lp *Loop) hasPending(ctx context.Context, now time.Time) bool {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if !lp.checkedAt.IsZero() && now.Sub(lp.checkedAt) < lp.live.cacheFor {
		return lp.cached
	}
	pending, err := lp.pending(ctx)
	lp.checkedAt, lp.cached = now, err == nil && pending
	return lp.cached
}
