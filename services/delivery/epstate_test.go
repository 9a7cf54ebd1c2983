package delivery

import (
	"testing"
	"time"
)

func TestEndpointStatesFailing(t *testing.T) {
	s := newEndpointStates()
	now := time.Now()
	if _, failing := s.failingUntil("ep_a", now); failing {
		t.Fatal("unknown endpoint is failing")
	}
	s.failed("ep_a", now, now.Add(time.Minute))
	s.failed("ep_a", now, now.Add(5*time.Second)) // an earlier retry: that is when to look again
	s.failed("ep_a", now, now.Add(time.Hour))     // a later one changes nothing
	if until, failing := s.failingUntil("ep_a", now); !failing || !until.Equal(now.Add(5*time.Second)) {
		t.Errorf("failingUntil = %v, %v; want the earliest pending retry %v", until, failing, now.Add(5*time.Second))
	}
	later := now.Add(6 * time.Second)
	if _, failing := s.failingUntil("ep_a", later); failing {
		t.Error("still failing after the earliest retry was due")
	}
	s.failed("ep_a", later, later.Add(time.Hour)) // the earlier back-off had passed: replaced
	if until, _ := s.failingUntil("ep_a", later); !until.Equal(later.Add(time.Hour)) {
		t.Errorf("failingUntil after a new failure = %v, want %v", until, later.Add(time.Hour))
	}
	s.succeeded("ep_a", later)
	if _, failing := s.failingUntil("ep_a", later); failing {
		t.Error("failing after a success")
	}
}

func TestEndpointStatesDeferSlots(t *testing.T) {
	s := newEndpointStates()
	now := time.Now()
	for range 20 {
		s.observe("ep_a", now, time.Second) // average approaches 1s
	}
	first := s.deferSlot("ep_a", now, 100*time.Millisecond, 4)
	second := s.deferSlot("ep_a", now, 100*time.Millisecond, 4)
	third := s.deferSlot("ep_a", now, 100*time.Millisecond, 4)
	if !first.Equal(now.Add(100 * time.Millisecond)) {
		t.Errorf("first slot = %v after now, want the base delay 100ms", first.Sub(now))
	}
	gap := second.Sub(first)
	if gap < 240*time.Millisecond || gap > 250*time.Millisecond || third.Sub(second) != gap {
		t.Errorf("slot gaps = %v, %v; want about 1s/4 each", gap, third.Sub(second))
	}
	// Once the slots are in the past, the next starts from now again.
	later := now.Add(time.Minute)
	if got := s.deferSlot("ep_a", later, 100*time.Millisecond, 4); !got.Equal(later.Add(100 * time.Millisecond)) {
		t.Errorf("slot after the backlog passed = %v after now, want 100ms", got.Sub(later))
	}
}

func TestEndpointStatesDisabledAhead(t *testing.T) {
	s := newEndpointStates()
	now := time.Now()
	s.failed("ep_a", now, now.Add(time.Hour))
	s.markDisabled("ep_a", now, 7)
	if !s.disabledAhead("ep_a", 6) || s.disabledAhead("ep_a", 7) || s.disabledAhead("ep_b", 0) {
		t.Error("disabledAhead: want true only while the view shows an older revision")
	}
	if _, failing := s.failingUntil("ep_a", now); failing {
		t.Error("a disabled endpoint is still backing off")
	}
	s.prune(now.Add(time.Hour))
	if s.disabledAhead("ep_a", 0) {
		t.Error("state of an idle endpoint not pruned")
	}
}
