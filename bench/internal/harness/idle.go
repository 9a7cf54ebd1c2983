package harness

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
)

// barIdle is the idle scenario's target (issue 13).
const barIdle = "idle_cpu_pct ≤ 2 with 8 partitions, ≤ 5 with 64"

// idleLimits are the bar per partition count, in percent of one core.
var idleLimits = []struct {
	partitions int
	limitPct   float64
}{{8, 2}, {64, 5}}

// idle: the system up with 100 tenants × 10 endpoints and no traffic, once
// with 8 delivery partitions and once with 64, each a fresh system; the CPU
// all its processes (redis-server included) use over 60 s after a settling
// period, in percent of one core.
func (h *Harness) idle(ctx context.Context, res *Result) error {
	res.Bar = barIdle
	window := h.pick(60*time.Second, 20*time.Second, 2*time.Second)
	settle := h.pick(10*time.Second, 5*time.Second, time.Second)
	met := true
	var why []string
	for _, l := range idleLimits {
		pct, err := h.idleRun(ctx, l.partitions, settle, window, res)
		if err != nil {
			return fmt.Errorf("%d partitions: %w", l.partitions, err)
		}
		switch l.partitions {
		case 8:
			res.IdleCPUPctP8 = &pct
		case 64:
			res.IdleCPUPctP64 = &pct
		}
		met = met && pct <= l.limitPct
		why = append(why, fmt.Sprintf("%.2f %% of a core with %d partitions (bar %.0f %%)", pct, l.partitions, l.limitPct))
	}
	res.DurationS = round(window.Seconds())
	res.judge(met, "idle: "+strings.Join(why, ", "))
	if met {
		res.Reason = ""
	}
	return nil
}

// idleRun starts a system with the given partition count, creates the
// fleet, waits settle, and measures the system's CPU over window. It records
// per-process CPU seconds, peak RSS, Redis commands and JetStream API
// requests per second under "p<partitions>" keys of res.
func (h *Harness) idleRun(ctx context.Context, partitions int, settle, window time.Duration, res *Result) (_ float64, err error) {
	tag := fmt.Sprintf("p%d", partitions)
	name := "idle-" + tag
	// The partition count of the system started here only.
	saved := h.opts.Partitions
	h.opts.Partitions = partitions
	sys, err := h.startSystem(ctx, name, h.opts.Shape)
	h.opts.Partitions = saved
	if err != nil {
		return 0, err
	}
	defer func() {
		for k, v := range sys.rss() {
			res.RSSPeakMiB[k+" ("+tag+")"] = round(v)
		}
		res.Redis = sys.redisDesc
		if serr := sys.stop(); serr != nil {
			h.logf("  %v", serr)
			res.Extra["stop_error_"+tag] = serr.Error()
		}
	}()
	f := h.newFleet("idle", 100, 10, nil)
	if err := h.create(ctx, sys, f, 16, res); err != nil {
		return 0, err
	}
	h.logf("  %d partitions: settling for %v, then measuring for %v", partitions, settle, window)
	if err := sleepCtx(ctx, settle); err != nil {
		return 0, err
	}
	counters := newIdleCounters(ctx, sys)
	defer counters.close()
	before := counters.read(ctx)
	cpu0 := systemCPU(sys)
	started := time.Now()
	profiles := h.startProfiles(ctx, sys, name, window)
	werr := sleepCtx(ctx, window)
	// The CPU is read before the profiles are written out.
	cpu1 := systemCPU(sys)
	elapsed := time.Since(started)
	after := counters.read(ctx)
	res.Profiles = append(res.Profiles, profiles()...)
	if werr != nil {
		return 0, werr
	}
	if p := sys.dead(); p != nil {
		return 0, fmt.Errorf("%s exited: %s", p.name, p.tail())
	}
	if res.CPUSeconds == nil {
		res.CPUSeconds = map[string]float64{}
	}
	var total time.Duration
	for k, v := range cpu1 {
		d := v - cpu0[k]
		total += d
		res.CPUSeconds[k+" ("+tag+")"] = round(d.Seconds())
	}
	pct := round(100 * total.Seconds() / elapsed.Seconds())
	per := map[string]any{"window_s": round(elapsed.Seconds()), "cpu_pct": pct, "partitions": partitions}
	for k, v := range after {
		if b, ok := before[k]; ok {
			per[k+"_per_s"] = round(float64(v-b) / elapsed.Seconds())
		}
	}
	res.Extra["idle_"+tag] = per
	h.logf("  %d partitions: %.2f %% of one core over %v; %v", partitions, pct, elapsed.Round(time.Millisecond), per)
	return pct, nil
}

// systemCPU is the CPU time of every process of sys, redis-server included.
func systemCPU(sys *system) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range sys.procs {
		out[p.name] = p.cpuTime()
	}
	if sys.redis != nil {
		out["redis-server"] = sys.redis.cpuTime()
	}
	return out
}

// idleCounters reads what the system asks of its servers: Redis commands
// processed (INFO stats) and JetStream API requests of the account.
type idleCounters struct {
	rdb *redis.Client
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newIdleCounters(ctx context.Context, sys *system) *idleCounters {
	c := &idleCounters{}
	if sys.redisURL != "" {
		if opts, err := redis.ParseURL(sys.redisURL); err == nil {
			c.rdb = redis.NewClient(opts)
		}
	}
	if nc, err := nats.Connect(sys.natsURL, nats.Name("pulsehooks-bench-idle")); err == nil {
		c.nc = nc
		c.js, _ = jetstream.New(nc)
	}
	return c
}

// read returns the counters it could read; the reads themselves add one
// Redis command and one JetStream API request each.
func (c *idleCounters) read(ctx context.Context) map[string]int64 {
	out := map[string]int64{}
	if c.rdb != nil {
		if info, err := c.rdb.Info(ctx, "stats").Result(); err == nil {
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
					if n, err := strconv.ParseInt(v, 10, 64); err == nil {
						out["redis_commands"] = n
					}
				}
			}
		}
	}
	if c.js != nil {
		if ai, err := c.js.AccountInfo(ctx); err == nil {
			out["jetstream_api_requests"] = int64(ai.API.Total)
		}
	}
	return out
}

func (c *idleCounters) close() {
	if c.rdb != nil {
		_ = c.rdb.Close()
	}
	if c.nc != nil {
		c.nc.Close()
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
