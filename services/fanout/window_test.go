package fanout

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// idFuture is a PubAckFuture that only carries an id, to check ordering.
type idFuture int

func (idFuture) Ok() <-chan *jetstream.PubAck { return nil }
func (idFuture) Err() <-chan error            { return nil }
func (idFuture) Msg() *nats.Msg               { return nil }

func TestAckWindowIsFIFOAcrossWrapAround(t *testing.T) {
	w := newAckWindow(3)
	next, want := 0, 0
	push := func() {
		t.Helper()
		if w.full() {
			t.Fatalf("full() with %d of 3 held", w.len())
		}
		w.push(idFuture(next))
		next++
	}
	pop := func() {
		t.Helper()
		if got := w.pop(); got != idFuture(want) {
			t.Fatalf("pop() = %v, want %v", got, want)
		}
		want++
	}
	for range 3 {
		push()
	}
	if !w.full() {
		t.Fatal("full() = false with 3 of 3 held")
	}
	for range 10 { // wraps around the ring several times
		pop()
		push()
	}
	for w.len() > 0 {
		pop()
	}
	if want != next {
		t.Errorf("popped %d futures, want %d", want, next)
	}
}

func TestAckWindowResetSetsTheLimit(t *testing.T) {
	tests := []struct {
		limit, want int
	}{
		{1, 1},
		{2, 2},
		{0, 1},
		{10, 4}, // at most the ring size
	}
	for _, tt := range tests {
		w := newAckWindow(4)
		w.push(idFuture(1))
		w.reset(tt.limit)
		if w.len() != 0 {
			t.Errorf("reset(%d) left %d futures", tt.limit, w.len())
		}
		held := 0
		for !w.full() {
			w.push(idFuture(held))
			held++
		}
		if held != tt.want {
			t.Errorf("after reset(%d) the window holds %d, want %d", tt.limit, held, tt.want)
		}
	}
}
