package delivery

import (
	"context"
	"sync"
	"time"
)

// lanes dispatches jobs to one lane per endpoint, so that one slow or dead
// endpoint never delays another. A lane is made when its endpoint's first job
// arrives and removed when it has nothing running or waiting.
//
// Each lane runs at most concurrency jobs at once. Further jobs wait in the
// lane's queue, bounded to queueCap. When the queue is full, dispatch refuses
// the job at once — the partition's pull loop never blocks on a lane — and
// the partition puts the delivery off to the Redis schedule and acks it, so a
// saturated endpoint never holds more than concurrency + queueCap of its
// partition's un-acked messages.
type lanes struct {
	concurrency int
	queueCap    int
	run         func(context.Context, *job)
	wg          sync.WaitGroup
	// idle hands a lane run to a worker goroutine waiting for one, so that
	// a burst of deliveries (one per endpoint in a fan-out) reuses
	// goroutines, and their grown stacks, instead of starting one each.
	idle chan laneRun
	// quit ends the idle workers at stop.
	quit chan struct{}

	mu      sync.Mutex
	byKey   map[string]*lane
	stopped bool
}

// lane is the state of one endpoint's lane, guarded by lanes.mu.
type lane struct {
	key     string
	running int
	queue   []queuedJob
}

// laneRun is a job to run in a lane, followed by the lane's waiting jobs.
type laneRun struct {
	ctx context.Context
	l   *lane
	j   *job
}

// idleWorkerTTL is how long a worker goroutine waits for another lane run
// before it ends.
const idleWorkerTTL = 2 * time.Second

// queuedJob is a job waiting in a lane, with when it was queued.
type queuedJob struct {
	j     *job
	since time.Time
}

// dispatched is what dispatch did with a job.
type dispatched int

const (
	// started: the job runs now.
	started dispatched = iota
	// queued: the job waits in its lane's queue.
	queued
	// full: the lane has no free slot and no room in its queue; the caller
	// keeps the job.
	full
	// refused: the lanes are stopping; the caller keeps the job.
	refused
)

func newLanes(concurrency, queueCap int, run func(context.Context, *job)) *lanes {
	return &lanes{
		concurrency: concurrency, queueCap: queueCap, run: run, byKey: map[string]*lane{},
		idle: make(chan laneRun), quit: make(chan struct{}),
	}
}

// dispatch hands j to the lane of key: it starts now if the lane has a free
// slot, else it waits in the queue if there is room. It never blocks. The
// lane runs its jobs with ctx.
func (ls *lanes) dispatch(ctx context.Context, key string, j *job) dispatched {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.stopped {
		return refused
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
		r := laneRun{ctx: ctx, l: l, j: j}
		select {
		case ls.idle <- r:
		default:
			go ls.worker(r)
		}
		return started
	case len(l.queue) < ls.queueCap:
		l.queue = append(l.queue, queuedJob{j: j, since: time.Now()})
		return queued
	default:
		return full
	}
}

// worker carries out r, then further lane runs handed to it while it waits
// idle, until none comes for idleWorkerTTL or the lanes stop.
func (ls *lanes) worker(r laneRun) {
	t := time.NewTimer(idleWorkerTTL)
	defer t.Stop()
	for {
		ls.work(r.ctx, r.l, r.j)
		t.Reset(idleWorkerTTL)
		select {
		case r = <-ls.idle:
		case <-t.C:
			return
		case <-ls.quit:
			return
		}
	}
}

// work runs j, then the lane's next waiting jobs, until there is none.
func (ls *lanes) work(ctx context.Context, l *lane, j *job) {
	defer ls.wg.Done()
	for j != nil {
		ls.run(ctx, j)
		j = ls.next(l)
	}
}

// next takes the lane's next waiting job; with none (or after stop) it gives
// up the slot and removes an idle lane.
func (ls *lanes) next(l *lane) *job {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if !ls.stopped && len(l.queue) > 0 {
		j := l.queue[0].j
		l.queue[0] = queuedJob{}
		l.queue = l.queue[1:]
		return j
	}
	l.running--
	if l.running == 0 && len(l.queue) == 0 {
		delete(ls.byKey, l.key)
	}
	return nil
}

// stop stops starting jobs and returns those that never started; running
// jobs finish (see wait).
func (ls *lanes) stop() []*job {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if !ls.stopped {
		close(ls.quit)
	}
	ls.stopped = true
	var left []*job
	for k, l := range ls.byKey {
		for _, q := range l.queue {
			left = append(left, q.j)
		}
		l.queue = nil
		if l.running == 0 {
			delete(ls.byKey, k)
		}
	}
	return left
}

// expired is a job taken out of its lane's queue by expire.
type expired struct {
	key string
	j   *job
}

// expire takes out of the queues, oldest first, every job queued before
// cutoff, and returns them; the caller puts them off. Queues are FIFO, so
// each lane's expired jobs are a prefix of its queue.
func (ls *lanes) expire(cutoff time.Time) []expired {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var out []expired
	for _, l := range ls.byKey {
		n := 0
		for n < len(l.queue) && l.queue[n].since.Before(cutoff) {
			out = append(out, expired{key: l.key, j: l.queue[n].j})
			l.queue[n] = queuedJob{}
			n++
		}
		l.queue = l.queue[n:]
	}
	return out
}

// wait blocks until every running job has finished.
func (ls *lanes) wait() { ls.wg.Wait() }

// stats returns the number of lanes and of jobs waiting in them.
func (ls *lanes) stats() (lanes, waiting int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.byKey {
		waiting += len(l.queue)
	}
	return len(ls.byKey), waiting
}
