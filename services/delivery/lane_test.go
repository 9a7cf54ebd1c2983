package delivery

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// laneRecorder runs jobs by blocking each until release is closed, and
// records the order in which they started.
type laneRecorder struct {
	release chan struct{}
	started chan uint64
	mu      sync.Mutex
	order   []uint64
}

func newLaneRecorder() *laneRecorder {
	return &laneRecorder{release: make(chan struct{}), started: make(chan uint64, 100)}
}

func (r *laneRecorder) run(_ context.Context, j *job) {
	r.mu.Lock()
	r.order = append(r.order, j.seq)
	r.mu.Unlock()
	r.started <- j.seq
	<-r.release
}

func (r *laneRecorder) startedOrder() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// laneState returns the lane of key's running count and queue length.
func laneState(ls *lanes, key string) (running, queued int, ok bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.byKey[key]
	if !ok {
		return 0, 0, false
	}
	return l.running, len(l.queue), true
}

func receive(t *testing.T, ch <-chan uint64) uint64 {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no job started within 10s")
		return 0
	}
}

func TestLanesCapAndQueue(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		concurrency, queueCap, jobs int
		wantRunning, wantQueued     int
		wantFull                    int
	}{
		{"fits in the slots", 3, 2, 2, 2, 0, 0},
		{"fills the queue", 2, 2, 4, 2, 2, 0},
		{"refuses beyond the queue", 2, 2, 7, 2, 2, 3},
		{"one slot, one place", 1, 1, 5, 1, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newLaneRecorder()
			ls := newLanes(tc.concurrency, tc.queueCap, r.run)
			var got []dispatched
			for i := 1; i <= tc.jobs; i++ {
				got = append(got, ls.dispatch(context.Background(), "ep_slow", &job{seq: uint64(i)}))
			}
			var want []dispatched
			for i := 0; i < tc.jobs; i++ {
				switch {
				case i < tc.wantRunning:
					want = append(want, started)
				case i < tc.wantRunning+tc.wantQueued:
					want = append(want, queued)
				default:
					want = append(want, full)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("dispatch results = %v, want %v", got, want)
			}
			running, queuedN, _ := laneState(ls, "ep_slow")
			if running != tc.wantRunning || queuedN != tc.wantQueued {
				t.Errorf("lane running/queued = %d/%d, want %d/%d", running, queuedN, tc.wantRunning, tc.wantQueued)
			}
			close(r.release)
			ls.wait()
			if got, want := len(r.startedOrder()), tc.jobs-tc.wantFull; got != want {
				t.Errorf("jobs run = %d, want %d", got, want)
			}
			if n, waiting := ls.stats(); n != 0 || waiting != 0 {
				t.Errorf("after draining: %d lanes, %d waiting; want the idle lane removed", n, waiting)
			}
		})
	}
}

func TestLanesRunInArrivalOrder(t *testing.T) {
	r := newLaneRecorder()
	close(r.release)
	ls := newLanes(1, 6, r.run)
	for i := 1; i <= 6; i++ {
		ls.dispatch(context.Background(), "ep_a", &job{seq: uint64(i)})
	}
	ls.wait()
	if got, want := r.startedOrder(), []uint64{1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("start order = %v, want %v", got, want)
	}
}

func TestLanesIsolateEndpoints(t *testing.T) {
	r := newLaneRecorder()
	ls := newLanes(1, 1, r.run)
	// ep_slow's only slot is taken by a job that does not finish, and its
	// queue fills up.
	for i := 1; i <= 3; i++ {
		ls.dispatch(context.Background(), "ep_slow", &job{seq: uint64(i)})
	}
	if got := receive(t, r.started); got != 1 {
		t.Fatalf("first started job = %d, want 1", got)
	}
	ls.dispatch(context.Background(), "ep_fast", &job{seq: 100})
	if got := receive(t, r.started); got != 100 {
		t.Errorf("started job = %d, want ep_fast's 100 while ep_slow is blocked", got)
	}
	if n, waiting := ls.stats(); n != 2 || waiting != 1 {
		t.Errorf("stats = %d lanes, %d waiting; want 2 lanes, 1 waiting", n, waiting)
	}
	close(r.release)
	ls.wait()
}

func TestLanesStop(t *testing.T) {
	r := newLaneRecorder()
	ls := newLanes(1, 2, r.run)
	for i := 1; i <= 3; i++ {
		ls.dispatch(context.Background(), "ep_a", &job{seq: uint64(i)})
	}
	receive(t, r.started)
	left := ls.stop()
	var seqs []uint64
	for _, j := range left {
		seqs = append(seqs, j.seq)
	}
	slices.Sort(seqs)
	if want := []uint64{2, 3}; !slices.Equal(seqs, want) {
		t.Errorf("stop returned jobs %v, want the unstarted %v", seqs, want)
	}
	if got := ls.dispatch(context.Background(), "ep_a", &job{seq: 4}); got != refused {
		t.Errorf("dispatch after stop = %v, want refused", got)
	}
	close(r.release)
	ls.wait()
	if got, want := r.startedOrder(), []uint64{1}; !slices.Equal(got, want) {
		t.Errorf("jobs run = %v, want only the one in flight %v", got, want)
	}
}

// goroutineID is the id of the calling goroutine, from its stack header.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func TestLanesReuseIdleWorkers(t *testing.T) {
	var (
		mu  sync.Mutex
		ids = map[string]int{}
	)
	done := make(chan struct{}, 1)
	ls := newLanes(1, 0, func(context.Context, *job) {
		mu.Lock()
		ids[goroutineID()]++
		mu.Unlock()
		done <- struct{}{}
	})
	const runs = 50
	for i := range runs {
		// A different endpoint each time, as in a fan-out.
		if got := ls.dispatch(context.Background(), fmt.Sprintf("ep_%d", i), &job{seq: uint64(i)}); got != started {
			t.Fatalf("dispatch %d = %v, want started", i, got)
		}
		<-done
		time.Sleep(5 * time.Millisecond) // let the worker go idle
	}
	mu.Lock()
	distinct := len(ids)
	mu.Unlock()
	// Without reuse every run has a goroutine of its own (50); a slow
	// machine may occasionally start a second worker before the first is idle.
	if distinct > runs/5 {
		t.Errorf("%d runs used %d goroutines; idle workers were not reused", runs, distinct)
	}

	base := runtime.NumGoroutine()
	ls.stop()
	ls.wait()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() >= base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n >= base {
		t.Errorf("idle workers still running after stop: %d goroutines, %d before stop", n, base)
	}
}
