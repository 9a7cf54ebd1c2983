package delivery

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	schedule := DefaultSchedule()
	for _, tc := range []struct {
		name       string
		made       uint32
		random     float64 // jitter draw in [0, 1): 0 is -20%, 0.5 none, near 1 +20%
		status     int
		retryAfter string
		want       time.Duration
		wantMore   bool
	}{
		{"after the first attempt", 1, 0.5, 500, "", 5 * time.Second, true},
		{"after the second", 2, 0.5, 0, "", 5 * time.Minute, true},
		{"after the seventh", 7, 0.5, 500, "", 10 * time.Hour, true},
		{"after the last", 8, 0.5, 500, "", 0, false},
		{"jitter low end", 3, 0, 500, "", 24 * time.Minute, true},
		{"jitter high end", 3, 0.75, 500, "", 33 * time.Minute, true},
		{"429 Retry-After within 1-2x", 2, 0.5, 429, "420", 7 * time.Minute, true},
		{"429 Retry-After below the delay", 2, 0.5, 429, "1", 5 * time.Minute, true},
		{"503 Retry-After above twice the delay", 2, 0.5, 503, "3600", 10 * time.Minute, true},
		{"503 Retry-After as a date", 1, 0.5, 503, now.Add(8 * time.Second).Format(http.TimeFormat), 8 * time.Second, true},
		{"503 Retry-After date in the past", 1, 0.5, 503, now.Add(-time.Hour).Format(http.TimeFormat), 5 * time.Second, true},
		{"503 Retry-After garbage", 1, 0.5, 503, "soon", 5 * time.Second, true},
		{"500 ignores Retry-After", 1, 0.5, 500, "9", 5 * time.Second, true},
		{"clamp uses the jittered delay", 1, 0, 429, "100", 8 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := backoff{schedule: schedule, jitter: 0.2, random: func() float64 { return tc.random }}
			h := http.Header{}
			if tc.retryAfter != "" {
				h.Set("Retry-After", tc.retryAfter)
			}
			got, more := b.delay(tc.made, tc.status, h, now)
			if got != tc.want || more != tc.wantMore {
				t.Errorf("delay(%d, %d, Retry-After %q) = %v, %v; want %v, %v", tc.made, tc.status, tc.retryAfter, got, more, tc.want, tc.wantMore)
			}
		})
	}
}

func TestBackoffJitterStaysWithinBounds(t *testing.T) {
	b := newBackoff(Config{Schedule: DefaultSchedule(), Jitter: 0.2})
	seenLow, seenHigh := false, false
	for range 2000 {
		d, _ := b.delay(1, 500, nil, time.Now())
		if d < 4*time.Second || d > 6*time.Second {
			t.Fatalf("delay %v outside 5s ± 20%%", d)
		}
		seenLow = seenLow || d < 4500*time.Millisecond
		seenHigh = seenHigh || d > 5500*time.Millisecond
	}
	if !seenLow || !seenHigh {
		t.Errorf("2000 delays did not spread across 4–6 s (low seen %v, high seen %v)", seenLow, seenHigh)
	}
	none := newBackoff(Config{Schedule: DefaultSchedule()}.withDefaults())
	none.jitter = 0
	if d, _ := none.delay(2, 500, nil, time.Now()); d != 5*time.Minute {
		t.Errorf("delay without jitter = %v, want 5m", d)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 120 ", 2 * time.Minute, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{"Mon, 02 Jan 2006 15:04:05 GMT", 0, true}, // in the past: now
		{"tomorrow", 0, false},
	} {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}
