package delivery

import (
	"context"
	"sync"
)

// lanes dispatches jobs to one lane per endpoint, so that one slow or dead
// endpoint never delays another. A lane is made when its endpoint's first job
// arrives and removed when it has nothing running or waiting.
//
// Each lane runs at most concurrency jobs at once. Further jobs wait in the
// lane's queue, bounded to queueCap. When the queue is full, dispatch still
// returns at once — the partition's pull loop never blocks on a lane — and the
// job waits un-acked in the lane's overflow; it moves into the queue when room
// frees, in arrival order. Waiting jobs are kept alive with InProgress by
// their partition, so the overflow is bounded only by the partition
// consumer's MaxAckPending: a lane that overflows for long enough stalls its
// partition. The retry-schedule change moves overflowing jobs to Redis
// instead (see Retrier), which removes that limit.
type lanes struct {
	concurrency int
	queueCap    int
	run         func(context.Context, *job)
	wg          sync.WaitGroup

	mu      sync.Mutex
	byKey   map[string]*lane
	stopped bool
}

// lane is the state of one endpoint's lane, guarded by lanes.mu.
type lane struct {
	key      string
	running  int
	queue    []*job
	overflow []*job
}

func newLanes(concurrency, queueCap int, run func(context.Context, *job)) *lanes {
	return &lanes{concurrency: concurrency, queueCap: queueCap, run: run, byKey: map[string]*lane{}}
}

// dispatch hands j to the lane of key: it starts now if the lane has a free
// slot, else it waits. It never blocks. The lane runs its jobs with ctx.
// After stop it does nothing and reports false.
func (ls *lanes) dispatch(ctx context.Context, key string, j *job) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.stopped {
		return false
	}
	l := ls.byKey[key]
	if l == nil {
		l = &lane{key: key}
		ls.byKey[key] = l
	}
	switch {
	case l.running < ls.concurrency:
		l.running++
		ls.wg.Add(1)
		go ls.work(ctx, l, j)
	case len(l.queue) < ls.queueCap:
		l.queue = append(l.queue, j)
	default:
		l.overflow = append(l.overflow, j)
	}
	return true
}

// work runs j, then the lane's next waiting jobs, until there is none.
func (ls *lanes) work(ctx context.Context, l *lane, j *job) {
	defer ls.wg.Done()
	for j != nil {
		ls.run(ctx, j)
		j = ls.next(l)
	}
}

// next takes the lane's next waiting job, refilling the queue from the
// overflow; with none (or after stop) it gives up the slot and removes an
// idle lane.
func (ls *lanes) next(l *lane) *job {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if !ls.stopped && len(l.queue) > 0 {
		j := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		if len(l.overflow) > 0 {
			l.queue = append(l.queue, l.overflow[0])
			l.overflow[0] = nil
			l.overflow = l.overflow[1:]
		}
		return j
	}
	l.running--
	if l.running == 0 && len(l.queue) == 0 && len(l.overflow) == 0 {
		delete(ls.byKey, l.key)
	}
	return nil
}

// stop stops starting jobs and returns those that never started; running
// jobs finish (see wait).
func (ls *lanes) stop() []*job {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.stopped = true
	var left []*job
	for k, l := range ls.byKey {
		left = append(left, l.queue...)
		left = append(left, l.overflow...)
		l.queue, l.overflow = nil, nil
		if l.running == 0 {
			delete(ls.byKey, k)
		}
	}
	return left
}

// wait blocks until every running job has finished.
func (ls *lanes) wait() { ls.wg.Wait() }

// stats returns the number of lanes and of jobs waiting in them.
func (ls *lanes) stats() (lanes, waiting int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.byKey {
		waiting += len(l.queue) + len(l.overflow)
	}
	return len(ls.byKey), waiting
}
