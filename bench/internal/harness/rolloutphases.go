package harness

import (
	"slices"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/count"
	"github.com/pulsehooks/pulsehooks/bench/internal/records"
)

// rolloutMark is the start of one phase of the rollout load: the SIGTERM
// of a process (or the load's start, for the phase before the first).
type rolloutMark struct {
	process string
	at      time.Time
}

// rolloutPhase is the latency of the deliveries whose event was accepted
// within one phase: from a process's SIGTERM to the next one's (the last
// runs to the end of the load).
type rolloutPhase struct {
	Process string `json:"process"`
	// FromS and ToS bound the phase, in seconds since the load started.
	FromS      float64 `json:"from_s"`
	ToS        float64 `json:"to_s"`
	Deliveries int     `json:"deliveries"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// Over1s counts the deliveries that took longer than a second.
	Over1s int `json:"over_1s"`
}

// rolloutPhases splits the expected deliveries by the phase in which their
// event was accepted (marks in time order, the first the load's start) and
// returns each phase's latency: acceptance to first 2xx receipt, the
// latency p99_ms is made of. end bounds the last phase.
func rolloutPhases(marks []rolloutMark, end time.Time, acks []records.Ack, subscribers map[string][]string, got []records.Receipt) []rolloutPhase {
	if len(marks) == 0 {
		return nil
	}
	first := map[count.Key]int64{}
	for _, r := range got {
		if !r.OK() {
			continue
		}
		k := count.Key{ID: r.ID, Endpoint: r.Endpoint}
		if at, ok := first[k]; !ok || r.At < at {
			first[k] = r.At
		}
	}
	lat := make([][]time.Duration, len(marks))
	for _, a := range acks {
		i := phaseOf(marks, a.At)
		if i < 0 {
			continue
		}
		for _, ep := range subscribers[a.Tenant] {
			if at, ok := first[count.Key{ID: a.ID, Endpoint: ep}]; ok {
				lat[i] = append(lat[i], time.Duration(max(at-a.At, 0)))
			}
		}
	}
	start := marks[0].at
	out := make([]rolloutPhase, len(marks))
	for i, m := range marks {
		to := end
		if i+1 < len(marks) {
			to = marks[i+1].at
		}
		l := lat[i]
		slices.Sort(l)
		ph := rolloutPhase{Process: m.process, FromS: round3(m.at.Sub(start).Seconds()), ToS: round3(to.Sub(start).Seconds()), Deliveries: len(l)}
		if len(l) > 0 {
			ph.P99Ms = round(ms(count.Percentile(l, 99)))
			ph.MaxMs = round(ms(l[len(l)-1]))
			ph.Over1s = len(l) - sortSearchAbove(l, time.Second)
		}
		out[i] = ph
	}
	return out
}

// phaseOf returns the index of the last mark at or before t (Unix
// nanoseconds), or -1 when t is before the first.
func phaseOf(marks []rolloutMark, t int64) int {
	i := -1
	for j, m := range marks {
		if m.at.UnixNano() <= t {
			i = j
		}
	}
	return i
}

// sortSearchAbove returns the number of durations in sorted that are at
// most d.
func sortSearchAbove(sorted []time.Duration, d time.Duration) int {
	n, _ := slices.BinarySearchFunc(sorted, d, func(e, t time.Duration) int {
		if e <= t {
			return -1
		}
		return 1
	})
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
