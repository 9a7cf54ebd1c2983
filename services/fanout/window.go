package fanout

import "github.com/nats-io/nats.go/jetstream"

// ackWindow is a FIFO of the publishes of one fan-out still awaiting their
// store ack, in a ring buffer reused from event to event.
type ackWindow struct {
	ring  []jetstream.PubAckFuture
	head  int // index of the oldest future
	n     int // futures held
	limit int // most futures held for the current event, at most len(ring)
}

func newAckWindow(size int) *ackWindow {
	return &ackWindow{ring: make([]jetstream.PubAckFuture, size), limit: size}
}

// reset empties the window and sets how many futures it holds at most.
func (w *ackWindow) reset(limit int) {
	for w.n > 0 {
		w.pop()
	}
	w.head = 0
	w.limit = max(1, min(limit, len(w.ring)))
}

// len is the number of futures held.
func (w *ackWindow) len() int { return w.n }

// full reports whether the oldest future must complete before the next push.
func (w *ackWindow) full() bool { return w.n >= w.limit }

// push adds the newest future; the window must not be full.
func (w *ackWindow) push(f jetstream.PubAckFuture) {
	w.ring[(w.head+w.n)%len(w.ring)] = f
	w.n++
}

// pop removes and returns the oldest future; the window must not be empty.
func (w *ackWindow) pop() jetstream.PubAckFuture {
	f := w.ring[w.head]
	w.ring[w.head] = nil
	w.head = (w.head + 1) % len(w.ring)
	w.n--
	return f
}
