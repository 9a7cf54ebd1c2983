package delivery

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff computes when a failed delivery is tried again.
type backoff struct {
	schedule []time.Duration
	jitter   float64
	// random returns a number in [0, 1); rand.Float64 unless a test sets it.
	random func() float64
}

func newBackoff(cfg Config) backoff {
	return backoff{schedule: cfg.Schedule, jitter: cfg.Jitter, random: rand.Float64}
}

// maxAttempts is the number of attempts of the schedule.
func (b backoff) maxAttempts() uint32 { return uint32(len(b.schedule)) }

// delay returns how long to wait after the made-th attempt failed with
// status (0 when no response came) and response header h, or false when that
// was the last attempt. It is the schedule's delay before the next attempt,
// spread by ±jitter; for 429 and 503 a Retry-After the endpoint sent is
// honoured, clamped to 1–2× that delay.
func (b backoff) delay(made uint32, status int, h http.Header, now time.Time) (time.Duration, bool) {
	if made >= b.maxAttempts() {
		return 0, false
	}
	d := b.schedule[made]
	if b.jitter > 0 {
		d = time.Duration(float64(d) * (1 + b.jitter*(2*b.random()-1)))
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if ra, ok := retryAfter(h.Get("Retry-After"), now); ok {
			d = min(max(ra, d), 2*d)
		}
	}
	return d, true
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(365*24*time.Hour/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}
