package attemptlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestMeasure builds a store of ATTEMPTLOG_MEASURE attempts (for example
// 10000000) spread over 30 days, then measures the portal's queries. It is
// skipped unless the variable is set:
//
//	ATTEMPTLOG_MEASURE=10000000 go test -run TestMeasure -v -timeout 3h ./attemptlog/
//
// ATTEMPTLOG_MEASURE_DIR keeps the store in that directory (default: a
// temporary one); with ATTEMPTLOG_MEASURE_REUSE=1 an existing store there is
// measured without building it again.
func TestMeasure(t *testing.T) {
	total, _ := strconv.Atoi(os.Getenv("ATTEMPTLOG_MEASURE"))
	if total <= 0 {
		t.Skip("set ATTEMPTLOG_MEASURE=<attempts> to build and measure a store")
	}
	dir := os.Getenv("ATTEMPTLOG_MEASURE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	reuse := os.Getenv("ATTEMPTLOG_MEASURE_REUSE") == "1"
	if !reuse {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := newWorkload(total, s.now())
	if reuse {
		w.sampleFrom(t, s)
	} else {
		w.build(t, s)
	}
	logf(t, "after build: RSS %s, peak RSS %s, Go heap in use %s, store %+v", mib(rss("VmRSS")), mib(rss("VmHWM")), mib(heapInUse()), s.Stats())
	logf(t, "disk: %s (du of %s)", mib(duBytes(dir)), dir)
	w.measure(t, s)
	logf(t, "after queries: RSS %s, peak RSS %s", mib(rss("VmRSS")), mib(rss("VmHWM")))
}

// workload is the synthetic traffic: tenants with skewed volume, 50
// endpoints each, each message delivered to 2 endpoints; 85% of deliveries
// succeed at once, 10% after 1–2 failures, 5% exhaust 8 attempts
// (concentrated on failing endpoints).
type workload struct {
	total, tenants, perTenant int
	now                       time.Time
	rng                       *rand.Rand
	endpoints                 [][]string

	// samples of ids to query, picked in proportion to traffic
	sampleEndpoints []sampleEP
	sampleMessages  []sampleMsg
	sampleAttempts  []sampleMsg
}

type sampleEP struct{ tenant, id string }
type sampleMsg struct{ tenant, id string }

const samples = 4000

func newWorkload(total int, now time.Time) *workload {
	w := &workload{total: total, tenants: 200, perTenant: 50, now: now, rng: rand.New(rand.NewPCG(1, 2))}
	start := now.Add(-31 * 24 * time.Hour)
	for i := 0; i < w.tenants; i++ {
		eps := make([]string, w.perTenant)
		for j := range eps {
			eps[j] = ids.NewAt(ids.Endpoint, start)
		}
		w.endpoints = append(w.endpoints, eps)
	}
	return w
}

func tenantName(i int) string { return fmt.Sprintf("tenant-%03d", i) }

var eventTypes = []string{"job.created", "job.processing", "job.completed", "job.failed", "job.cancelled"}

func (w *workload) build(t *testing.T, s *Store) {
	span := 30*24*time.Hour - time.Hour
	start := w.now.Add(-span)
	// about 2.57 attempts per message (2 deliveries, see workload)
	messages := int(float64(w.total) / 2.4)
	step := span / time.Duration(messages)
	b := s.NewBatch()
	var attempts, events, seq int
	began := time.Now()
	lastReport := began
	for m := 0; attempts < w.total; m++ {
		at := start.Add(time.Duration(m) * step)
		if at.After(w.now) {
			break
		}
		ti := int(float64(w.tenants) * pow3(w.rng.Float64()))
		tenant := tenantName(ti)
		msgID := ids.NewAt(ids.Message, at)
		typ := eventTypes[w.rng.IntN(len(eventTypes))]
		seq++
		ev := &eventv1.Event{MessageId: msgID, TenantId: tenant, EventType: typ, Timestamp: timestamppb.New(at.Add(-time.Second)), AcceptedAt: timestamppb.New(at)}
		if err := b.AddEvent(uint64(seq), ev); err != nil {
			t.Fatal(err)
		}
		events++
		for k := 0; k < 2 && attempts < w.total; k++ {
			epi := w.rng.IntN(w.perTenant)
			ep := w.endpoints[ti][epi]
			failing := epi == 0 // one endpoint per tenant is dead
			n, final := 1, eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED
			switch r := w.rng.Float64(); {
			case failing:
				n, final = 8, eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED
			case r < 0.10:
				n = 2 + w.rng.IntN(2)
			}
			delays := []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
			when := at.Add(20 * time.Millisecond)
			for i := 1; i <= n && attempts < w.total; i++ {
				when = when.Add(delays[i-1])
				if when.After(w.now) {
					break
				}
				state := eventv1.DeliveryState_DELIVERY_STATE_RETRYING
				if i == n {
					state = final
				}
				a := w.attempt(tenant, ep, msgID, typ, uint32(i), when, state)
				if err := b.AddAttempt(uint64(attempts+1), a); err != nil {
					t.Fatal(err)
				}
				attempts++
				w.sample(attempts, &w.sampleAttempts, sampleMsg{tenant, a.GetId()})
				w.sampleEP(attempts, sampleEP{tenant, ep})
				if b.Len() >= maxBatch {
					if err := b.Commit(streams.Attempts, uint64(attempts)); err != nil {
						t.Fatal(err)
					}
					b.Close()
					b = s.NewBatch()
				}
			}
		}
		w.sample(events, &w.sampleMessages, sampleMsg{tenant, msgID})
		if time.Since(lastReport) > 30*time.Second {
			lastReport = time.Now()
			logf(t, "  %d attempts, %d events, %.0f attempts/s, RSS %s", attempts, events, float64(attempts)/time.Since(began).Seconds(), mib(rss("VmRSS")))
		}
	}
	if err := b.Commit(streams.Attempts, uint64(attempts)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	took := time.Since(began)
	logf(t, "built %d attempts and %d messages in %v: %.0f attempts/s (%.0f records/s with messages), one goroutine, batches of %d",
		attempts, events, took.Round(time.Second), float64(attempts)/took.Seconds(), float64(attempts+events)/took.Seconds(), maxBatch)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// Let the compactions the build left behind finish (up to 10 min), as
	// they would under the steady trickle of production writes.
	settle := time.Now()
	for quiet := 0; quiet < 20 && time.Since(settle) < 10*time.Minute; {
		if s.compacting() {
			quiet = 0
		} else {
			quiet++
		}
		time.Sleep(100 * time.Millisecond)
	}
	logf(t, "compactions settled after %v", time.Since(settle).Round(time.Second))
}

func pow3(x float64) float64 { return x * x * x }

// sample keeps a uniform sample of the n items seen so far (reservoir).
func (w *workload) sample(n int, into *[]sampleMsg, v sampleMsg) {
	if len(*into) < samples {
		*into = append(*into, v)
	} else if i := w.rng.IntN(n); i < samples {
		(*into)[i] = v
	}
}

func (w *workload) sampleEP(n int, v sampleEP) {
	if len(w.sampleEndpoints) < samples {
		w.sampleEndpoints = append(w.sampleEndpoints, v)
	} else if i := w.rng.IntN(n); i < samples {
		w.sampleEndpoints[i] = v
	}
}

// sampleFrom picks query targets from an existing store (reuse).
func (w *workload) sampleFrom(t *testing.T, s *Store) {
	ctx := context.Background()
	for i := 0; i < w.tenants && len(w.sampleMessages) < samples; i++ {
		p, err := s.Messages(ctx, tenantName(i), MessageQuery{Query: Query{Limit: 250}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Items {
			w.sampleMessages = append(w.sampleMessages, sampleMsg{m.TenantID, m.ID})
			a, err := s.MessageAttempts(ctx, m.TenantID, m.ID, Query{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, at := range a.Items {
				w.sampleAttempts = append(w.sampleAttempts, sampleMsg{m.TenantID, at.ID})
				w.sampleEndpoints = append(w.sampleEndpoints, sampleEP{m.TenantID, at.EndpointID})
			}
		}
	}
	logf(t, "reusing the store: %d messages, %d attempts, %d endpoints sampled", len(w.sampleMessages), len(w.sampleAttempts), len(w.sampleEndpoints))
}

func (w *workload) attempt(tenant, ep, msg, typ string, n uint32, started time.Time, state eventv1.DeliveryState) *eventv1.Attempt {
	dur := time.Duration(20+w.rng.IntN(300)) * time.Millisecond
	a := &eventv1.Attempt{
		Id:         ids.NewAt(ids.Attempt, started.Add(dur)),
		MessageId:  msg,
		TenantId:   tenant,
		EndpointId: ep,
		EventType:  typ,
		Attempt:    n,
		Url:        "https://hooks." + tenant + ".example.com/pulse/webhooks",
		StartedAt:  timestamppb.New(started),
		DurationUs: dur.Microseconds(),
		State:      state,
		TraceId:    fmt.Sprintf("%032x", w.rng.Uint64()),
		RequestHeaders: []*eventv1.Header{
			{Name: "content-type", Value: "application/json"},
			{Name: "traceparent", Value: "00-" + fmt.Sprintf("%032x", w.rng.Uint64()) + "-" + fmt.Sprintf("%016x", w.rng.Uint64()) + "-01"},
			{Name: "user-agent", Value: "pulsehooks/1.0.0"},
			{Name: "webhook-id", Value: msg},
			{Name: "webhook-signature", Value: "REDACTED"},
			{Name: "webhook-timestamp", Value: strconv.FormatInt(started.Unix(), 10)},
		},
	}
	if state == eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED {
		a.Outcome, a.StatusCode = eventv1.Outcome_OUTCOME_SUCCESS, 200
		a.ResponseHeaders = []*eventv1.Header{{Name: "content-length", Value: "16"}, {Name: "content-type", Value: "application/json"}, {Name: "date", Value: started.UTC().Format(time.RFC1123)}, {Name: "server", Value: "nginx"}}
		a.ResponseBody = []byte(`{"received":true}`)
	} else {
		switch w.rng.IntN(3) {
		case 0:
			a.Outcome, a.StatusCode = eventv1.Outcome_OUTCOME_HTTP_STATUS, 503
			a.ResponseHeaders = []*eventv1.Header{{Name: "content-type", Value: "text/html"}, {Name: "date", Value: started.UTC().Format(time.RFC1123)}, {Name: "retry-after", Value: "120"}, {Name: "server", Value: "nginx"}}
			a.ResponseBody = []byte("<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>")
		case 1:
			a.Outcome = eventv1.Outcome_OUTCOME_TIMEOUT
			a.Error = "Post \"https://hooks." + tenant + ".example.com/pulse/webhooks\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
		default:
			a.Outcome = eventv1.Outcome_OUTCOME_CONNECTION
			a.Error = "dial tcp 203.0.113.7:443: connect: connection refused"
		}
		if state == eventv1.DeliveryState_DELIVERY_STATE_RETRYING {
			a.NextAttemptAt = timestamppb.New(started.Add(5 * time.Minute))
		}
	}
	return a
}

// measure runs each portal query against sampled targets and reports p50,
// p99 and max.
func (w *workload) measure(t *testing.T, s *Store) {
	ctx := context.Background()
	const n = 2000
	pick := func(i int) sampleEP { return w.sampleEndpoints[(i*7919)%len(w.sampleEndpoints)] }
	pickMsg := func(i int) sampleMsg { return w.sampleMessages[(i*7919)%len(w.sampleMessages)] }
	pickAtt := func(i int) sampleMsg { return w.sampleAttempts[(i*7919)%len(w.sampleAttempts)] }
	var rows int
	queries := []struct {
		name string
		f    func(i int) error
	}{
		{"endpoint attempts, first page (50)", func(i int) error {
			e := pick(i)
			p, err := s.EndpointAttempts(ctx, e.tenant, e.id, AttemptQuery{Query: Query{Limit: 50}})
			rows += len(p.Items)
			return err
		}},
		{"endpoint attempts, pages 1-5 following the cursor", func(i int) error {
			e := pick(i)
			q := AttemptQuery{Query: Query{Limit: 50}}
			for range 5 {
				p, err := s.EndpointAttempts(ctx, e.tenant, e.id, q)
				if err != nil || p.Next == "" {
					return err
				}
				q.Cursor = p.Next
			}
			return nil
		}},
		{"endpoint attempts, outcome=timeout", func(i int) error {
			e := pick(i)
			_, err := s.EndpointAttempts(ctx, e.tenant, e.id, AttemptQuery{Query: Query{Limit: 50}, Outcome: eventv1.Outcome_OUTCOME_TIMEOUT})
			return err
		}},
		{"endpoint attempts, 1 h window 10 days ago", func(i int) error {
			e := pick(i)
			before := w.now.Add(-10 * 24 * time.Hour)
			_, err := s.EndpointAttempts(ctx, e.tenant, e.id, AttemptQuery{Query: Query{Limit: 50, After: before.Add(-time.Hour), Before: before}})
			return err
		}},
		{"endpoint messages (delivery status), first page", func(i int) error {
			e := pick(i)
			_, err := s.EndpointDeliveries(ctx, e.tenant, e.id, DeliveryQuery{Query: Query{Limit: 50}})
			return err
		}},
		{"endpoint stats, 24 hourly buckets", func(i int) error {
			e := pick(i)
			_, err := s.EndpointStats(ctx, e.tenant, e.id, 24)
			return err
		}},
		{"tenant messages, first page", func(i int) error {
			m := pickMsg(i)
			_, err := s.Messages(ctx, m.tenant, MessageQuery{Query: Query{Limit: 50}})
			return err
		}},
		{"tenant messages, event_type filter", func(i int) error {
			m := pickMsg(i)
			_, err := s.Messages(ctx, m.tenant, MessageQuery{Query: Query{Limit: 50}, EventType: "job.failed"})
			return err
		}},
		{"message + deliveries + attempts", func(i int) error {
			m := pickMsg(i)
			if _, err := s.Message(ctx, m.tenant, m.id); err != nil {
				return fmt.Errorf("message %s: %w", m.id, err)
			}
			if _, err := s.MessageDeliveries(ctx, m.tenant, m.id, 1000); err != nil {
				return err
			}
			_, err := s.MessageAttempts(ctx, m.tenant, m.id, Query{Limit: 50})
			return err
		}},
		{"attempt by id (its ATTEMPTS sequence)", func(i int) error {
			a := pickAtt(i)
			_, err := s.AttemptSequence(ctx, a.tenant, a.id)
			if err != nil {
				return fmt.Errorf("attempt %s: %w", a.id, err)
			}
			return nil
		}},
		{"failed deliveries of an endpoint (recover scan, ≤ 10,000)", func(i int) error {
			e := pick(i)
			_, _, err := s.FailedDeliveries(ctx, e.tenant, e.id, w.now.Add(-7*24*time.Hour), w.now, 10000)
			return err
		}},
	}
	logf(t, "query latencies over %d runs each (store API, one goroutine, block cache %d MiB):", n, DefaultCacheBytes>>20)
	for _, q := range queries {
		lat := make([]time.Duration, 0, n)
		runs := n
		if strings.HasPrefix(q.name, "failed deliveries") {
			runs = 200
		}
		for i := range runs {
			t0 := time.Now()
			if err := q.f(i); err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		logf(t, "  %-58s p50 %8v  p99 %8v  max %8v", q.name, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	}
	_ = rows
}

func logf(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf(format, args...)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// rss reads a memory figure of this process from /proc (kB → bytes).
func rss(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func heapInUse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func duBytes(dir string) int64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	return total
}
