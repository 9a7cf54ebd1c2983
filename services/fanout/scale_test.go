package fanout

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// newRecorder returns a tracer provider whose ended spans rec records.
func newRecorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// fanoutSpans returns the ended fanout spans rec recorded.
func fanoutSpans(rec *tracetest.SpanRecorder) []sdktrace.ReadOnlySpan {
	var spans []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "fanout" {
			spans = append(spans, s)
		}
	}
	return spans
}

func TestReplicasShareTheWork(t *testing.T) {
	const events = 200
	h := newHarness(t, false)
	tenant, eps := addEndpoints(h, 3)
	cfg := testConfig()
	cfg.Concurrency = 4
	var recorders []*tracetest.SpanRecorder
	for range 2 {
		tp, rec := newRecorder(t)
		recorders = append(recorders, rec)
		h.start(cfg, tp)
	}

	var last uint64
	for range events {
		last = h.publishEvent(newEvent(tenant.GetId(), "job.completed"), nil)
	}
	h.checkNoRedelivery(h.waitSettled(last))
	var perReplica []int
	testenv.WaitFor(t, settleTimeout, func() error {
		perReplica = perReplica[:0]
		total := 0
		for _, rec := range recorders {
			n := len(fanoutSpans(rec))
			perReplica = append(perReplica, n)
			total += n
		}
		if total != events {
			return fmt.Errorf("replicas fanned out %v events, want %d in all", perReplica, events)
		}
		return nil
	})
	t.Logf("events fanned out per replica: %v", perReplica)
	for i, n := range perReplica {
		if n == 0 {
			t.Errorf("replica %d fanned out no event, want a share of the work", i)
		}
	}
	state := h.deliveryState()
	if state.Msgs != uint64(events*len(eps)) {
		t.Errorf("stored %d deliveries, want %d", state.Msgs, events*len(eps))
	}
	for _, ep := range eps {
		subject := streams.DeliverySubject(ep.GetId(), testPartitions)
		if got := state.Subjects[subject]; got != events {
			t.Errorf("%s holds %d deliveries, want %d", subject, got, events)
		}
	}
}

func TestLargeFanOut(t *testing.T) {
	const endpoints = 10_000
	h := newHarness(t, false)
	tenant, _ := addEndpoints(h, endpoints)
	cfg := testConfig()
	cfg.Streams.Partitions = streams.DefaultPartitions
	tp, rec := newRecorder(t)
	h.start(cfg, tp)

	ev := newEvent(tenant.GetId(), "job.completed")
	h.checkNoRedelivery(h.waitSettled(h.publishEvent(ev, nil)))
	t.Logf("fanned out one event to %d endpoints in %v", endpoints, fanoutDuration(t, rec))

	state := h.deliveryState()
	if state.Msgs != endpoints {
		t.Errorf("stored %d deliveries, want %d", state.Msgs, endpoints)
	}
	if len(state.Subjects) != endpoints {
		t.Errorf("deliveries on %d subjects, want %d", len(state.Subjects), endpoints)
	}
	for subject, n := range state.Subjects {
		if n != 1 {
			t.Errorf("%s holds %d deliveries, want 1", subject, n)
		}
	}
}

// fanoutDuration waits for the one fanout span rec records and returns its duration.
func fanoutDuration(t *testing.T, rec *tracetest.SpanRecorder) time.Duration {
	t.Helper()
	testenv.WaitFor(t, settleTimeout, func() error {
		if n := len(fanoutSpans(rec)); n != 1 {
			return fmt.Errorf("%d fanout spans ended, want 1", n)
		}
		return nil
	})
	span := fanoutSpans(rec)[0]
	return span.EndTime().Sub(span.StartTime())
}

func TestLongFanOutRenewsItsAckWait(t *testing.T) {
	const endpoints = 10_000
	h := newHarness(t, false)
	tenant, _ := addEndpoints(h, endpoints)
	cfg := testConfig()
	cfg.AckWait = 400 * time.Millisecond
	cfg.PublishWindow = 1 // one store round trip per delivery: a slow fan-out
	tp, rec := newRecorder(t)
	h.start(cfg, tp)

	info := h.waitSettled(h.publishEvent(newEvent(tenant.GetId(), "job.completed"), nil))
	took := fanoutDuration(t, rec)
	t.Logf("fanned out one event to %d endpoints, one at a time, in %v", endpoints, took)
	// Had the AckWait not been renewed, the server would have handed the
	// event out again while it was being fanned out.
	if took <= cfg.AckWait {
		t.Skipf("the fan-out took %v, too short for AckWait %v to matter on this machine", took, cfg.AckWait)
	}
	h.checkNoRedelivery(info)
}
