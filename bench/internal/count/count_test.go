package count

import (
	"fmt"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/bench/internal/records"
)

// world is 3 tenants with 2 endpoints each and 4 events per tenant, all
// received exactly once, 5 ms after their ack.
func world() ([]records.Ack, map[string][]string, []records.Receipt) {
	subs := map[string][]string{}
	var acks []records.Ack
	var got []records.Receipt
	for t := range 3 {
		tenant := fmt.Sprintf("t%d", t)
		subs[tenant] = []string{tenant + "-a", tenant + "-b"}
		for e := range 4 {
			id := fmt.Sprintf("msg_%d_%d", t, e)
			at := int64(1_000_000 * (10*t + e + 1))
			acks = append(acks, records.Ack{ID: id, Tenant: tenant, Sent: at - 100, At: at})
			for _, ep := range subs[tenant] {
				got = append(got, records.Receipt{ID: id, Endpoint: ep, At: at + int64(5*time.Millisecond), Status: 200})
			}
		}
	}
	return acks, subs, got
}

func TestCountExact(t *testing.T) {
	acks, subs, got := world()
	res := Count(acks, subs, got, nil)
	if !res.Exact() || res.Expected != 24 || res.Delivered != 24 {
		t.Fatalf("Count = %+v, want 24 expected and delivered, exact", res)
	}
	if p := Percentile(res.Latencies, 99); p != 5*time.Millisecond {
		t.Errorf("p99 = %v, want 5ms", p)
	}
}

func TestCountFindsMistakes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(acks []records.Ack, got []records.Receipt) ([]records.Ack, []records.Receipt)
		check  func(r Result) error
	}{
		{"one receipt dropped is lost", func(a []records.Ack, g []records.Receipt) ([]records.Ack, []records.Receipt) {
			return a, append(g[:5:5], g[6:]...)
		}, func(r Result) error {
			if r.Lost != 1 || r.Delivered != 23 || len(r.LostSample) != 1 || r.LostSample[0] != (Key{"msg_0_2", "t0-b"}) {
				return fmt.Errorf("lost %d %v, delivered %d; want msg_0_2 to t0-b lost", r.Lost, r.LostSample, r.Delivered)
			}
			return nil
		}},
		{"a second receipt is a duplicate", func(a []records.Ack, g []records.Receipt) ([]records.Ack, []records.Receipt) {
			d := g[3]
			d.At += 1000
			return a, append(g, d)
		}, func(r Result) error {
			if r.Duplicates != 1 || r.Lost != 0 || r.Delivered != 24 {
				return fmt.Errorf("duplicates %d lost %d delivered %d, want 1, 0, 24", r.Duplicates, r.Lost, r.Delivered)
			}
			return nil
		}},
		{"a receipt nobody sent is unexpected", func(a []records.Ack, g []records.Receipt) ([]records.Ack, []records.Receipt) {
			return a, append(g, records.Receipt{ID: "msg_x", Endpoint: "t0-a", At: 1, Status: 200})
		}, func(r Result) error {
			if r.Unexpected != 1 || r.Exact() {
				return fmt.Errorf("unexpected %d, exact %v; want 1, false", r.Unexpected, r.Exact())
			}
			return nil
		}},
		{"a receipt at an endpoint of another tenant is unexpected", func(a []records.Ack, g []records.Receipt) ([]records.Ack, []records.Receipt) {
			return a, append(g, records.Receipt{ID: "msg_0_0", Endpoint: "t1-a", At: 1, Status: 200})
		}, func(r Result) error {
			if r.Unexpected != 1 {
				return fmt.Errorf("unexpected %d, want 1", r.Unexpected)
			}
			return nil
		}},
		{"a 500 is a failed attempt, not a delivery", func(a []records.Ack, g []records.Receipt) ([]records.Ack, []records.Receipt) {
			g[0].Status = 500
			return a, g
		}, func(r Result) error {
			if r.FailedAttempts != 1 || r.Lost != 1 {
				return fmt.Errorf("failed attempts %d lost %d, want 1, 1", r.FailedAttempts, r.Lost)
			}
			return nil
		}},
		{"a 500 then a 200 is one delivery", func(a []records.Ack, g []records.Receipt) ([]records.Ack, []records.Receipt) {
			f := g[0]
			f.Status, f.At = 500, f.At-1000
			return a, append(g, f)
		}, func(r Result) error {
			if !r.Exact() || r.FailedAttempts != 1 || r.Delivered != 24 {
				return fmt.Errorf("%+v, want exact with 1 failed attempt", r)
			}
			return nil
		}},
		{"ignored endpoints are not counted", func(a []records.Ack, g []records.Receipt) ([]records.Ack, []records.Receipt) {
			return a, append(g, records.Receipt{ID: "msg_0_0", Endpoint: "dead", At: 1})
		}, func(r Result) error {
			if !r.Exact() || r.Ignored != 1 {
				return fmt.Errorf("%+v, want exact with 1 ignored", r)
			}
			return nil
		}},
		{"an event never acked is not expected", func(a []records.Ack, g []records.Receipt) ([]records.Ack, []records.Receipt) {
			return a[1:], g
		}, func(r Result) error {
			if r.Expected != 22 || r.Unexpected != 2 {
				return fmt.Errorf("expected %d unexpected %d, want 22, 2", r.Expected, r.Unexpected)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acks, subs, got := world()
			acks, got = tc.change(acks, got)
			if err := tc.check(Count(acks, subs, got, map[string]bool{"dead": true})); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCountEarlyReceiptIsZeroLatency(t *testing.T) {
	acks := []records.Ack{{ID: "m", Tenant: "t", Sent: 10, At: 100}}
	got := []records.Receipt{{ID: "m", Endpoint: "e", At: 90, Status: 204}}
	res := Count(acks, map[string][]string{"t": {"e"}}, got, nil)
	if res.Early != 1 || res.Latencies[0] != 0 || !res.Exact() {
		t.Errorf("Count = %+v, want one early delivery with latency 0", res)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {0.1, 1}, {99.9, 100}} {
		if got := Percentile(d, tc.p); got != tc.want {
			t.Errorf("Percentile(1..100, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}
