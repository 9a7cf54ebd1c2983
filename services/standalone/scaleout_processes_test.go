package standalone_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/metricstest"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// scaleOutWithin is how soon after a worker joins or leaves the partitions
// must be balanced again (issue 11), and resumeWithin how soon after a
// worker is killed everything it held must be delivered by the others.
const (
	scaleOutWithin = 10 * time.Second
	resumeWithin   = 15 * time.Second
)

// createEndpointPerPartition makes one endpoint in each of the n
// partitions, subscribed to every event type, at hooks: endpoints are
// created until every partition has one, and those in a partition already
// covered are deleted again (before fanout and delivery start, so nothing
// is ever sent to them). It returns the endpoint names (the paths of their
// URLs at hooks), in no particular order.
func (c *cluster) createEndpointPerPartition(t *testing.T, tn tenant, hooks *hookLog, n int) []string {
	t.Helper()
	key := map[string]string{"x-api-key": tn.Key}
	var names []string
	covered := map[int]bool{}
	for made := 0; len(names) < n; made++ {
		if made > 40*n {
			t.Fatalf("%d endpoints made and only %d of %d partitions covered", made, len(names), n)
		}
		name := fmt.Sprintf("e%d", made)
		var ep struct {
			ID string `json:"id"`
		}
		if code := call(t, "POST", c.configURL()+"/v1/endpoints", key, map[string]any{"url": hooks.url(name)}, &ep); code != http.StatusCreated {
			t.Fatalf("create endpoint: status %d", code)
		}
		p := streams.Partition(ep.ID, n)
		if covered[p] {
			if code := call(t, "DELETE", c.configURL()+"/v1/endpoints/"+ep.ID, key, nil, nil); code/100 != 2 {
				t.Fatalf("delete endpoint %s: status %d", ep.ID, code)
			}
			continue
		}
		covered[p] = true
		hooks.endpoints[ep.ID] = name
		names = append(names, name)
	}
	return names
}

// attempts is a delivery process's pulsehooks_delivery_attempts_total.
func attempts(t *testing.T, p *process) float64 {
	t.Helper()
	f, err := metricstest.Get("http://" + p.health + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", p.name, err)
	}
	return f.Sum("pulsehooks_delivery_attempts_total")
}

// held is a delivery process's pulsehooks_partitions_held, or an error.
func held(p *process) (int, error) {
	f, err := metricstest.Get("http://" + p.health + "/metrics")
	if err != nil {
		return 0, err
	}
	return int(f.Sum("pulsehooks_partitions_held")), nil
}

// waitScaledOut waits, for up to scaleOutWithin after since, until the
// delivery processes hold ⌊n/W⌋ or ⌈n/W⌉ of the n partitions each, all n
// between them, and returns how long after since that was.
func waitScaledOut(t *testing.T, dels []*process, n int, since time.Time) time.Duration {
	t.Helper()
	lo, hi := n/len(dels), (n+len(dels)-1)/len(dels)
	testenv.WaitFor(t, scaleOutWithin-time.Since(since), func() error {
		total := 0
		var counts []int
		for _, p := range dels {
			c, err := held(p)
			if err != nil {
				return err
			}
			counts = append(counts, c)
			total += c
		}
		for _, c := range counts {
			if c < lo || c > hi {
				return fmt.Errorf("partitions held %v, want %d–%d each", counts, lo, hi)
			}
		}
		if total != n {
			return fmt.Errorf("partitions held %v, %d in all, want %d", counts, total, n)
		}
		return nil
	})
	return time.Since(since)
}

// TestDeliveryWorkersAsProcessesShareAndFailOver runs 3 delivery workers as
// separate OS processes (with config, ingest and fanout, each its own
// process, against a nats-server and a redis-server) under a steady load
// of HTTP publishes to one endpoint in each of the 16 partitions: the
// partitions are balanced and each worker's share of the attempts is
// within ±25 % of a third; a fourth worker joins and they are balanced
// again within 10 s; one worker is SIGKILLed and the other three hold its
// partitions within 10 s, and everything accepted up to a second after the
// kill (its unacked deliveries included) is delivered within 15 s of it.
// The accounting is exact: nothing accepted is lost, and every request an
// endpoint received has exactly one attempt record but those in flight at
// the kill (answered to nobody: not recorded, and sent again), which are
// also the only deliveries that may arrive twice.
func TestDeliveryWorkersAsProcessesShareAndFailOver(t *testing.T) {
	buildServices(t)
	start := time.Now()
	c := newCluster(t, "warn")
	c.startConfig(t)
	tn := c.createTenant(t, "acme")
	// Each answer takes 20 ms, so the killed worker has attempts in flight.
	hooks := newHookLog(t, 20*time.Millisecond)
	var inflight atomic.Int64
	hooks.inflight = &inflight
	names := c.createEndpointPerPartition(t, tn, hooks, faultPartitions)
	ing := c.startIngest(t)
	fan := c.startFanout(t, nil)
	var dels []*process
	for range 3 {
		dels = append(dels, c.startDelivery(t, nil))
	}
	c.waitIngest(t, ing)
	waitReady(t, fan)
	for _, p := range dels {
		waitReady(t, p)
	}
	took := waitScaledOut(t, dels, faultPartitions, time.Now())
	t.Logf("3 workers balanced %v after all were ready", took.Round(time.Millisecond))

	// Every view holds the endpoints before the load: a probe reaches them.
	probe := &publisher{url: "http://" + c.ingestHTTP, token: c.operatorToken, tenant: tn.ID, retry: true}
	probe.init()
	probe.deadline = 20 * time.Second
	probe.publish("job_probe")
	if len(probe.acceptedIDs()) != 1 {
		t.Fatalf("probe event not accepted: %s", probe.lastBody)
	}
	for _, name := range names {
		hooks.waitReceived(t, name, probe.acceptedIDs())
	}

	// A steady load: 2 publishers, one event each every 100 ms, to all 16
	// endpoints (about 320 deliveries a second).
	pb := &publisher{url: "http://" + c.ingestHTTP, token: c.operatorToken, tenant: tn.ID, retry: true}
	pb.init()
	ctx, cancel := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		pb.run(ctx, 2, 100*time.Millisecond)
	}()
	t.Cleanup(func() { cancel(); <-loadDone })

	// Shares over a window of steady load.
	time.Sleep(time.Second)
	var before []float64
	for _, p := range dels {
		before = append(before, attempts(t, p))
	}
	time.Sleep(4 * time.Second)
	total := 0.0
	var delta []float64
	for i, p := range dels {
		d := attempts(t, p) - before[i]
		delta = append(delta, d)
		total += d
	}
	if total == 0 {
		t.Fatal("no attempts in the measured window")
	}
	for i, d := range delta {
		share := d / total
		t.Logf("worker %d (pid %d) made %.0f of %.0f attempts (%.1f %%)", i, dels[i].cmd.Process.Pid, d, total, 100*share)
		if share < 0.75/3 || share > 1.25/3 {
			t.Errorf("worker %d made %.1f %% of the attempts, want within ±25 %% of a third (%.1f–%.1f %%)", i, 100*share, 75.0/3, 125.0/3)
		}
	}

	// A fourth joins.
	joined := time.Now()
	dels = append(dels, c.startDelivery(t, nil))
	waitReady(t, dels[3])
	took = waitScaledOut(t, dels, faultPartitions, joined)
	t.Logf("4 workers balanced %v after the fourth started", took.Round(time.Millisecond))
	mark := attempts(t, dels[3])
	testenv.WaitFor(t, faultWait, func() error {
		if got := attempts(t, dels[3]); got <= mark {
			return fmt.Errorf("the fourth worker has made no attempt since it took its partitions")
		}
		return nil
	})

	// One is SIGKILLed.
	time.Sleep(time.Second)
	killed := dels[1]
	killedHeld, err := held(killed)
	if err != nil {
		t.Fatal(err)
	}
	killed.kill(t)
	kill := time.Now()
	inflightAtKill := inflight.Load()
	dels = append(dels[:1], dels[2:]...)
	took = waitScaledOut(t, dels, faultPartitions, kill)
	t.Logf("3 workers balanced %v after the kill of one holding %d partitions", took.Round(time.Millisecond), killedHeld)
	// Everything accepted until a second after the kill arrives within
	// resumeWithin of it, the killed worker's partitions' included.
	time.Sleep(time.Until(kill.Add(time.Second)))
	due := pb.acceptedIDs()
	testenv.WaitFor(t, resumeWithin-time.Since(kill), func() error {
		missing := 0
		for _, name := range names {
			for _, id := range due {
				if hooks.count(name, id) == 0 {
					missing++
				}
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of the %d deliveries accepted until a second after the kill have not arrived", missing, len(due)*len(names))
		}
		return nil
	})
	t.Logf("all %d deliveries accepted until a second after the kill arrived %v after it", len(due)*len(names), time.Since(kill).Round(time.Millisecond))

	time.Sleep(time.Second)
	cancel()
	<-loadDone
	js := c.nats.JetStream(t)
	l := account(t, js, pb, hooks)
	t.Log(l)
	t.Logf("requests in flight at the kill (to any worker): %d; total %v", inflightAtKill, time.Since(start).Round(time.Millisecond))
	if l.accepted == 0 || l.lost != 0 || l.extra != 0 || l.repeatedRecords != 0 {
		t.Errorf("%v; want 0 lost, 0 attempt records extra or stored twice", l)
	}
	// A request in flight at the kill was answered to nobody: the killed
	// worker could neither record nor ack it, so it has no record and is
	// sent again. Nothing else may be missing or arrive twice.
	if int64(l.missing) > inflightAtKill || int64(l.duplicated) > inflightAtKill {
		t.Errorf("%d attempt records missing and %d deliveries arrived more than once, but only %d requests were in flight at the kill",
			l.missing, l.duplicated, inflightAtKill)
	}
}
