package pulseclient

import (
	"math/rand/v2"
	"time"
)

// backoff yields growing, jittered delays between attempts.
type backoff struct {
	next, max time.Duration
}

// delay returns the next delay: the current step ±20%, then doubles the step
// up to max.
func (b *backoff) delay() time.Duration {
	d := b.next
	if b.next < b.max {
		b.next = min(2*b.next, b.max)
	}
	if d <= 0 {
		return 0
	}
	jitter := time.Duration(rand.Int64N(int64(d)*2/5+1)) - d/5
	return d + jitter
}
