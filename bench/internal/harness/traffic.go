package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/bench/internal/count"
	"github.com/pulsehooks/pulsehooks/bench/internal/loadgen"
	"github.com/pulsehooks/pulsehooks/bench/internal/records"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// traffic is one load run against a running system.
type traffic struct {
	name string
	sys  *system
	// tenants receive the events in turn.
	tenants []string
	// subscribers maps a tenant to the endpoint names that must receive
	// each of its events; ignore lists endpoints made to fail.
	subscribers map[string][]string
	ignore      map[string]bool
	rate        float64
	duration    time.Duration
	events      int
	concurrency int
	// backlog, when positive, pauses publishing while more than this many
	// acknowledged deliveries have not reached the receiver.
	backlog int
	// settle waits, after the expected count arrived, until JetStream has
	// nothing pending (fanout consumer and DELIVERIES), so late duplicates
	// would be seen. Scenarios with failing endpoints never settle and wait
	// a grace period instead.
	settle bool
	// stall ends the wait when no delivery arrived for this long (default 30 s).
	stall time.Duration
	// during, when set, runs beside the load generator (restarts under
	// load, say); the run waits for it before counting, and its error ends
	// the run.
	during func(ctx context.Context) error
}

// runTraffic publishes with a loadgen process, waits until the deliveries
// arrived (or stopped arriving), and counts them into res.
func (h *Harness) runTraffic(ctx context.Context, t traffic, res *Result) error {
	if err := h.rc.Reset(ctx); err != nil {
		return err
	}
	dir := filepath.Join(h.work, t.name)
	tenantsFile := filepath.Join(dir, "tenants.txt")
	if err := os.WriteFile(tenantsFile, []byte(strings.Join(t.tenants, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	acksFile := filepath.Join(dir, "acks.tsv")
	args := []string{"publish", "-nats", t.sys.natsURL, "-tenants-file", tenantsFile, "-out", acksFile,
		"-rate", fmt.Sprint(t.rate), "-duration", t.duration.String(), "-events", fmt.Sprint(t.events),
		"-concurrency", fmt.Sprint(t.concurrency), "-size", "1024"}
	if t.backlog > 0 {
		per := 0
		for _, eps := range t.subscribers {
			per = max(per, len(eps))
		}
		args = append(args, "-backlog", fmt.Sprint(t.backlog), "-deliveries-per-event", fmt.Sprint(per), "-receiver", h.rc.Base)
	}
	cpu0 := map[string]time.Duration{"receiver": h.recv.cpuTime()}
	for _, p := range t.sys.procs {
		cpu0[p.name] = p.cpuTime()
	}
	if t.sys.redis != nil {
		cpu0["redis-server"] = t.sys.redis.cpuTime()
	}
	profiles := h.startProfiles(ctx, t.sys, t.name, t.duration)
	var sum loadgen.PublishSummary
	// A system process that dies ends the run at once.
	lctx, stopWatch := context.WithCancelCause(ctx)
	go t.sys.watch(lctx, stopWatch)
	duringErr := make(chan error, 1)
	if t.during != nil {
		go func() { duringErr <- t.during(lctx) }()
	} else {
		duringErr <- nil
	}
	rss, lgCPU, err := h.runLoadgenRSS(lctx, t.name, args, &sum)
	if derr := <-duringErr; derr != nil && err == nil {
		err = derr
	}
	if cause := context.Cause(lctx); cause != nil && ctx.Err() == nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	stopWatch(nil)
	published := time.Now()
	res.RSSPeakMiB["loadgen"] = round(mib(rss))
	if err != nil {
		profiles()
		return err
	}
	res.Published, res.Accepted, res.PublishErr = sum.Sent, sum.Acked, sum.Errors
	res.AcceptedPerS, res.AckP99Ms = round(sum.AcceptedPerS), round(sum.AckP99Ms)
	res.DurationS = round(sum.Seconds)
	if sum.Errors > 0 {
		res.Extra["publish_error_sample"] = sum.ErrorSample
	}
	if sum.MaxBehindMs > 100 {
		res.Extra["loadgen_max_behind_ms"] = round(sum.MaxBehindMs)
	}
	f, err := os.Open(acksFile)
	if err != nil {
		profiles()
		return err
	}
	acks, err := records.ReadAcks(f)
	_ = f.Close()
	if err != nil {
		profiles()
		return err
	}
	var want int64
	for _, a := range acks {
		want += int64(len(t.subscribers[a.Tenant]))
	}
	h.logf("  published %d events (%d acknowledged, %.0f/s, ack p99 %.2f ms); waiting for %d deliveries", sum.Sent, sum.Acked, sum.AcceptedPerS, sum.AckP99Ms, want)
	waitErr := h.waitDelivered(ctx, t, want)
	res.Profiles = append(res.Profiles, profiles()...)
	if waitErr != nil {
		h.logf("  %v", waitErr)
		res.Extra["wait"] = waitErr.Error()
	}
	res.CPUSeconds = map[string]float64{"loadgen": round(lgCPU.Seconds()), "receiver": round((h.recv.cpuTime() - cpu0["receiver"]).Seconds())}
	var sysCPU time.Duration
	for _, p := range t.sys.procs {
		d := p.cpuTime() - cpu0[p.name]
		sysCPU += d
		res.CPUSeconds[p.name] = round(d.Seconds())
	}
	if t.sys.redis != nil {
		d := t.sys.redis.cpuTime() - cpu0["redis-server"]
		sysCPU += d
		res.CPUSeconds["redis-server"] = round(d.Seconds())
	}
	got, err := h.rc.Receipts(ctx)
	if err != nil {
		return err
	}
	if h.opts.Keep {
		if err := writeReceipts(filepath.Join(dir, "receipts.tsv"), got); err != nil {
			return err
		}
	}
	st, err := h.rc.Stats(ctx)
	if err != nil {
		return err
	}
	res.BadSignatures = st.Rejected
	if st.Rejected > 0 {
		if rej, err := h.rc.Rejected(ctx); err == nil {
			res.Extra["rejected_sample"] = rej[:min(len(rej), 5)]
		}
	}
	c := count.Count(acks, t.subscribers, got, t.ignore)
	res.fill(c)
	if c.Delivered > 0 {
		res.CPUPerDeliveryUs = round(float64(sysCPU.Microseconds()) / float64(c.Delivered))
	}
	if h.ceiling != nil && h.ceiling.OK > 0 {
		res.CeilingCPUPerRequestUs = round(float64(h.ceilingCPU.Microseconds()) / float64(h.ceiling.OK))
	}
	if c.LastReceived > 0 {
		res.DrainS = round(max(float64(c.LastReceived-published.UnixNano())/1e9, 0))
	}
	res.Data = &Data{Acks: acks, Receipts: got, Subscribers: t.subscribers, Ignore: t.ignore}
	h.logf("  %d of %d delivered, %d lost, %d duplicates, %d unexpected; %.0f deliveries/s; p50 %.2f ms p99 %.2f ms max %.2f ms; CPU s %v",
		c.Delivered, c.Expected, c.Lost, c.Duplicates, c.Unexpected, res.DeliveriesPerS, res.P50Ms, res.P99Ms, res.MaxMs, res.CPUSeconds)
	return nil
}

// waitDelivered waits until the receiver answered want webhooks with 2xx
// (and, with t.settle, JetStream has nothing pending), or until none
// arrived for t.stall.
func (h *Harness) waitDelivered(ctx context.Context, t traffic, want int64) error {
	stall := t.stall
	if stall == 0 {
		stall = 30 * time.Second
	}
	var js jetstream.JetStream
	if t.settle {
		nc, err := nats.Connect(t.sys.natsURL, nats.Name("pulsehooks-bench"))
		if err != nil {
			return err
		}
		defer nc.Close()
		if js, err = jetstream.New(nc); err != nil {
			return err
		}
	}
	var last int64 = -1
	lastChange := time.Now()
	for {
		if p := t.sys.dead(); p != nil {
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		}
		st, err := h.rc.Stats(ctx)
		if err != nil {
			return err
		}
		if st.OK != last {
			last, lastChange = st.OK, time.Now()
		}
		if st.OK >= want {
			if js == nil {
				// Failing endpoints keep JetStream busy: give late
				// duplicates a moment to show instead.
				time.Sleep(time.Second)
				return nil
			}
			if err := streams.Idle(ctx, js); err == nil {
				time.Sleep(200 * time.Millisecond)
				return nil
			} else if time.Since(lastChange) > stall {
				return fmt.Errorf("all %d deliveries arrived but JetStream did not settle: %w", want, err)
			}
		} else if time.Since(lastChange) > stall {
			return fmt.Errorf("stopped waiting: %d of %d deliveries after no progress for %v", st.OK, want, stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeReceipts writes the receiver's receipts as TSV (webhook-id,
// endpoint, receive time in Unix nanoseconds, status), kept beside the load
// generator's acks.tsv for looking into a run afterwards.
func writeReceipts(path string, receipts []records.Receipt) error {
	var b strings.Builder
	for _, r := range receipts {
		fmt.Fprintf(&b, "%s\t%s\t%d\t%d\n", r.ID, r.Endpoint, r.At, r.Status)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write receipts: %w", err)
	}
	return nil
}
