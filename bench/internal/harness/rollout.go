package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/bench/internal/records"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// barRollout is the rollout scenario's target (issue 11).
const barRollout = "0 lost, 0 attempts missing, max ≤ 15,000 ms, p99 ≤ 3 × p99 without restarts"

// rolloutReplicas is the shape of the rollout scenario: the chart's default
// replica counts, except config, which the other services reach at one
// gRPC address (no load balancer in the harness).
var rolloutReplicas = map[string]int{"ingest": 2, "fanout": 2, "delivery": 3}

// rolloutOrder is the order of the restarts: one delivery worker, then
// each other service in turn.
var rolloutOrder = []string{"delivery", "ingest", "fanout", "config"}

// rollout: the latency load (1,000 events/s over 100 tenants with one
// endpoint each) on the processes shape with 3 delivery workers, 2 ingest
// and 2 fanout replicas: first without restarts (the steady p99), then
// while one process of each service is restarted with SIGTERM in turn.
func (h *Harness) rollout(ctx context.Context, res *Result) error {
	res.Bar = barRollout
	res.Shape = ShapeProcesses
	sys, err := h.startReplicas(ctx, "rollout", rolloutReplicas)
	if err != nil {
		return err
	}
	defer h.finish(sys, res)
	res.Extra["replicas"] = map[string]int{"config": 1, "ingest": rolloutReplicas["ingest"], "fanout": rolloutReplicas["fanout"], "delivery": rolloutReplicas["delivery"]}
	f := h.newFleet("ro", 100, 1, nil)
	if err := h.create(ctx, sys, f, 16, res); err != nil {
		return err
	}
	h.setFloor(res, 1000)

	// The gap after each restart lets latency settle before the next, so
	// each restart's effect is its own.
	gap := h.pick(8*time.Second, 4*time.Second, time.Second)
	steadyFor := h.pick(40*time.Second, 20*time.Second, 2*time.Second)
	if err := os.MkdirAll(filepath.Join(h.work, "rollout-steady"), 0o755); err != nil {
		return err
	}
	steady := Result{RSSPeakMiB: map[string]float64{}, Extra: map[string]any{}}
	h.logf("  steady load, no restarts, %v", steadyFor)
	if err := h.runTraffic(ctx, traffic{name: "rollout-steady", sys: sys, tenants: f.tenants, subscribers: f.subscribers,
		rate: 1000, duration: steadyFor, concurrency: 64, settle: true}, &steady); err != nil {
		return fmt.Errorf("steady load: %w", err)
	}
	res.P99MsSteady = steady.P99Ms
	res.Extra["steady"] = map[string]any{"deliveries": steady.Deliveries, "lost": steady.Lost, "duplicates": steady.Duplicates,
		"p50_ms": steady.P50Ms, "p99_ms": steady.P99Ms, "max_ms": steady.MaxMs, "duration_s": steady.DurationS}

	// The restarts take a few seconds each; the load runs until all are
	// done and one gap more (the loadgen duration is an upper bound: the
	// run waits for the restarts in any case).
	var timeline []map[string]any
	loadStart := time.Now()
	marks := []rolloutMark{{process: "none (before the first restart)", at: loadStart}}
	restarts := func(ctx context.Context) error {
		sleep := func(d time.Duration) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
				return nil
			}
		}
		if err := sleep(gap); err != nil {
			return err
		}
		for i, svc := range rolloutOrder {
			marks = append(marks, rolloutMark{process: svc, at: time.Now()})
			at := time.Since(loadStart)
			p, err := sys.restart(ctx, svc, i+1)
			if err != nil {
				return fmt.Errorf("restart %s: %w", svc, err)
			}
			stopped := time.Since(loadStart)
			if err := waitHTTP(ctx, p, sys.readyURL[svc], 120*time.Second); err != nil {
				return fmt.Errorf("restarted %s: %w", svc, err)
			}
			ready := time.Since(loadStart)
			timeline = append(timeline, map[string]any{"process": svc, "sigterm_at_s": round3(at.Seconds()),
				"stopped_after_s": round3((stopped - at).Seconds()), "ready_after_s": round3((ready - at).Seconds())})
			h.logf("  restarted %s at %.1f s: stopped after %.2f s, ready again after %.2f s", svc, at.Seconds(), (stopped - at).Seconds(), (ready - at).Seconds())
			if err := sleep(gap); err != nil {
				return err
			}
		}
		return nil
	}
	// Long enough for the restarts: delivery's stop waits for attempts in
	// flight (ms here), config's start opens its attempt log.
	loadFor := time.Duration(len(rolloutOrder)+1)*gap + h.pick(40*time.Second, 30*time.Second, 15*time.Second)
	if err := h.runTraffic(ctx, traffic{name: "rollout", sys: sys, tenants: f.tenants, subscribers: f.subscribers,
		rate: 1000, duration: loadFor, concurrency: 64, settle: true, during: restarts}, res); err != nil {
		return err
	}
	res.Extra["restarts"] = timeline
	// Which restart makes the tail: the latency of the deliveries whose
	// event was accepted after each SIGTERM and before the next.
	res.Extra["phases"] = rolloutPhases(marks, time.Now(), res.Data.Acks, res.Data.Subscribers, res.Data.Receipts)

	receipts := append(append([]records.Receipt(nil), steady.Data.Receipts...), res.Data.Receipts...)
	missing, stored, err := attemptsMissing(ctx, sys.natsURL, receipts)
	if err != nil {
		return fmt.Errorf("count attempt records: %w", err)
	}
	res.AttemptsMissing = &missing
	res.Extra["attempt_records"] = stored
	res.Extra["attempts_missing_counted_over"] = "both phases"
	lost := res.Lost + steady.Lost
	limit := 3 * res.P99MsSteady
	met := lost == 0 && missing == 0 && res.MaxMs <= 15000 && res.P99MsSteady > 0 && res.P99Ms <= limit
	res.judge(met, fmt.Sprintf("%d lost, %d attempts missing, max %.0f ms (bar 15,000), p99 %.2f ms vs %.2f ms (3 × steady %.2f ms)",
		lost, missing, res.MaxMs, res.P99Ms, limit, res.P99MsSteady))
	if met {
		res.Reason = ""
	}
	return nil
}

// attemptsMissing reads every record in ATTEMPTS and counts the deliveries
// the receiver answered 2xx for (message id and endpoint name) that have
// no succeeded attempt: per message, the endpoints received minus the
// endpoints with a succeeded record. It also returns the records read.
func attemptsMissing(ctx context.Context, natsURL string, receipts []records.Receipt) (int, int, error) {
	nc, err := nats.Connect(natsURL, nats.Name("pulsehooks-bench-attempts"))
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, streams.Attempts)
	if err != nil {
		return 0, 0, err
	}
	last := st.CachedInfo().State.LastSeq
	succeeded := map[string]map[string]bool{} // message id → endpoint ids
	n := 0
	if last > 0 {
		cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return 0, 0, err
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(4096))
		if err != nil {
			return 0, 0, err
		}
		defer it.Stop()
		for {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				return 0, 0, fmt.Errorf("read %s: %w", streams.Attempts, err)
			}
			n++
			a := &eventv1.Attempt{}
			if err := proto.Unmarshal(msg.Data(), a); err != nil {
				return 0, 0, fmt.Errorf("decode attempt: %w", err)
			}
			if a.GetState() == eventv1.DeliveryState_DELIVERY_STATE_SUCCEEDED {
				if succeeded[a.GetMessageId()] == nil {
					succeeded[a.GetMessageId()] = map[string]bool{}
				}
				succeeded[a.GetMessageId()][a.GetEndpointId()] = true
			}
			meta, err := msg.Metadata()
			if err != nil {
				return 0, 0, err
			}
			if meta.Sequence.Stream >= last {
				break
			}
		}
	}
	received := map[string]map[string]bool{} // message id → endpoint names
	for _, r := range receipts {
		if !r.OK() {
			continue
		}
		if received[r.ID] == nil {
			received[r.ID] = map[string]bool{}
		}
		received[r.ID][r.Endpoint] = true
	}
	missing := 0
	for id, eps := range received {
		missing += max(len(eps)-len(succeeded[id]), 0)
	}
	if len(received) == 0 {
		return 0, n, errors.New("no deliveries to check")
	}
	return missing, n, nil
}
