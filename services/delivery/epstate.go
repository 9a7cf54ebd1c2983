package delivery

import (
	"sync"
	"time"
)

const (
	// initialServiceTime is the assumed attempt duration of an endpoint not
	// yet measured.
	initialServiceTime = 100 * time.Millisecond
	// minDeferSpacing keeps put-off deliveries of one endpoint at least this
	// far apart.
	minDeferSpacing = time.Millisecond
	// idleStateAfter is how long the state of an endpoint with nothing
	// pending is kept.
	idleStateAfter = 10 * time.Minute
)

// endpointStates is what this worker knows about each endpoint beyond its
// configuration: whether it is failing, how long its attempts take, where
// the next put-off delivery goes, and whether this worker disabled it. It is
// kept in memory only: the partition of an endpoint is held by one worker at
// a time, and a worker that takes a partition over learns again.
type endpointStates struct {
	mu sync.Mutex
	m  map[string]*endpointState
}

type endpointState struct {
	// backoffUntil is the earliest pending retry of a failed attempt: until
	// then new deliveries are put off to it instead of being tried.
	backoffUntil time.Time
	// service is a moving average of attempt durations.
	service time.Duration
	// nextDefer is where the next delivery put off for a full lane goes.
	nextDefer time.Time
	// disabledRevision is the revision at which this worker disabled the
	// endpoint; until its view shows that revision, it drops deliveries.
	disabledRevision uint64
	touched          time.Time
}

func newEndpointStates() *endpointStates {
	return &endpointStates{m: map[string]*endpointState{}}
}

// get returns the state of ep, made if missing; the caller holds mu.
func (s *endpointStates) get(ep string, now time.Time) *endpointState {
	st := s.m[ep]
	if st == nil {
		st = &endpointState{service: initialServiceTime}
		s.m[ep] = st
	}
	st.touched = now
	return st
}

// failingUntil returns when ep's earliest pending retry is due, if that is
// after now: the endpoint is failing and new deliveries wait until then.
func (s *endpointStates) failingUntil(ep string, now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[ep]
	if st == nil || !st.backoffUntil.After(now) {
		return time.Time{}, false
	}
	return st.backoffUntil, true
}

// failed notes a failed attempt of ep whose retry is due at next.
func (s *endpointStates) failed(ep string, now, next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(ep, now)
	if !st.backoffUntil.After(now) || next.Before(st.backoffUntil) {
		st.backoffUntil = next
	}
}

// succeeded notes a success of ep: it is no longer failing.
func (s *endpointStates) succeeded(ep string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(ep, now).backoffUntil = time.Time{}
}

// observe folds the duration of an attempt into ep's average.
func (s *endpointStates) observe(ep string, now time.Time, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(ep, now)
	st.service = (4*st.service + d) / 5
}

// deferSlot returns when a delivery put off now because ep's lane is full
// should come back: at least base from now, and behind those put off before
// it by the time the lane takes to run one more (the average attempt
// duration over the concurrency), so a backlog returns at the pace the
// endpoint drains it rather than all at once.
func (s *endpointStates) deferSlot(ep string, now time.Time, base time.Duration, concurrency int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(ep, now)
	due := now.Add(base)
	if st.nextDefer.After(due) {
		due = st.nextDefer
	}
	st.nextDefer = due.Add(max(st.service/time.Duration(concurrency), minDeferSpacing))
	return due
}

// markDisabled notes that this worker disabled ep at revision.
func (s *endpointStates) markDisabled(ep string, now time.Time, revision uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(ep, now)
	st.disabledRevision = max(st.disabledRevision, revision)
	st.backoffUntil = time.Time{}
}

// disabledAhead reports whether this worker disabled ep at a revision newer
// than viewRevision, the one its configuration view shows.
func (s *endpointStates) disabledAhead(ep string, viewRevision uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.m[ep]
	return st != nil && st.disabledRevision > viewRevision
}

// prune forgets endpoints with nothing pending that were not seen lately.
func (s *endpointStates) prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ep, st := range s.m {
		if now.Sub(st.touched) > idleStateAfter && !st.backoffUntil.After(now) && !st.nextDefer.After(now) {
			delete(s.m, ep)
		}
	}
}
