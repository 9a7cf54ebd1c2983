package standalone_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// The tests below run the whole pipeline (config, ingest, fanout and
// delivery, each its own instance) under a steady load of HTTP publishes
// to two endpoints and break NATS or the services under it. The accounting
// is exact: every event ingest accepted must reach both endpoints, and
// every request an endpoint received must have exactly one record in
// ATTEMPTS.

// loadRate is the steady load: loadWorkers publishers, one event each per
// loadInterval (about 40 events/s, 80 deliveries/s).
const (
	loadWorkers  = 4
	loadInterval = 100 * time.Millisecond
)

// slowEndpoint is how long the endpoints of the NATS failure tests take to
// answer: about 8 attempts are in flight at any moment, so a failure
// always finds some whose records and acks are still to come.
const slowEndpoint = 100 * time.Millisecond

// startLoad runs pb until the returned function is called, which waits for
// the publishes in flight.
func startLoad(pb *publisher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pb.run(ctx, loadWorkers, loadInterval)
	}()
	return func() { cancel(); <-done }
}

// TestClusterLeaderFailoverLosesNothing kills (shuts down) the node leading
// DELIVERIES in a 3-node JetStream cluster with every stream at R3, starts
// it again on its store, then does the same to the node leading EVENTS, and
// last stops two nodes at once (the leaders of DELIVERIES and ATTEMPTS, or
// another second one): for 6 s no stream has a quorum, longer than any
// single publish waits. All under load, with slow endpoints so attempts are
// in flight at every kill. Publishers retry errors with the same
// Idempotency-Key. Nothing accepted is lost, every attempt the endpoints saw
// has its record, and every event is stored once.
func TestClusterLeaderFailoverLosesNothing(t *testing.T) {
	c := testenv.StartCluster(t, 3)
	p := newPipeline(t, c.URLs(), 3)
	hooks := newHookLog(t, slowEndpoint)
	tenant := p.setUp(t, hooks, "a", "b")
	pb := &publisher{url: "http://" + p.ingestHTTP, token: p.operatorToken, tenant: tenant, retry: true}
	pb.init()
	started := time.Now()
	stop := startLoad(pb)
	for _, stream := range []string{streams.Deliveries, streams.Events} {
		time.Sleep(1500 * time.Millisecond)
		leader := c.WaitStreamLeader(stream, 10*time.Second)
		t.Logf("%v: stopping %s, the leader of %s", time.Since(started).Round(time.Millisecond), leader.Name(), stream)
		leader.Stop()
		time.Sleep(2 * time.Second)
		leader.Start()
		c.WaitReady(30 * time.Second)
	}
	time.Sleep(time.Second)
	first := c.WaitStreamLeader(streams.Deliveries, 10*time.Second)
	second := c.WaitStreamLeader(streams.Attempts, 10*time.Second)
	if second == first {
		for _, node := range c.Nodes() {
			if node != first {
				second = node
				break
			}
		}
	}
	t.Logf("%v: stopping %s and %s: no quorum for 6s", time.Since(started).Round(time.Millisecond), first.Name(), second.Name())
	first.Stop()
	second.Stop()
	time.Sleep(6 * time.Second)
	first.Start()
	second.Start()
	c.WaitReady(30 * time.Second)
	time.Sleep(time.Second)
	stop()
	t.Logf("%v: load stopped", time.Since(started).Round(time.Millisecond))
	js := c.JetStream(t)
	checkLedger(t, account(t, js, pb, hooks))
	t.Logf("%v: accounted", time.Since(started).Round(time.Millisecond))
	checkStoredOnce(t, js, pb)
	t.Logf("publishers got %d error answers (each retried with its key)", pb.errors)
	t.Cleanup(func() { t.Logf("%v: cleanup", time.Since(started).Round(time.Millisecond)) })
}

// TestNATSKillLosesNothingAndResendsNothingCompleted SIGKILLs a single
// nats-server (its own process: nothing is flushed, its consumers' state may
// go back in time: it writes them at most every 100 ms) under load and
// starts it again on its store. Nothing
// accepted is lost, and no delivery whose completion record (ph:done) was
// in Redis at the moment of the kill is sent again.
func TestNATSKillLosesNothingAndResendsNothingCompleted(t *testing.T) {
	n := testenv.StartNATSProcess(t)
	p := newPipeline(t, n.URL(), 1)
	// Fast endpoints and a higher rate (about 200 events/s): many deliveries
	// are completed and acked in the last moments before the kill, whose
	// acks the restarted server may have forgotten. On main before the
	// fresh shortcut went, 32 of them were sent again.
	hooks := newHookLog(t, 0)
	tenant := p.setUp(t, hooks, "a", "b")
	pb := &publisher{url: "http://" + p.ingestHTTP, token: p.operatorToken, tenant: tenant, retry: true}
	pb.init()
	loadCtx, cancel := context.WithCancel(context.Background())
	loaded := make(chan struct{})
	go func() { defer close(loaded); pb.run(loadCtx, 8, 40*time.Millisecond) }()
	stop := func() { cancel(); <-loaded }
	time.Sleep(4 * time.Second)
	n.Kill()
	// Every record in Redis now was written before the kill, or in the
	// moments after it by attempts already past their check: each of them
	// must not be sent again.
	ctx := context.Background()
	var completed []string
	iter := p.rdb.Scan(ctx, 0, "ph:done:*", 1000).Iterator()
	for iter.Next(ctx) {
		completed = append(completed, strings.TrimPrefix(iter.Val(), "ph:done:"))
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	n.Start()
	time.Sleep(4 * time.Second)
	stop()
	js := n.JetStream(t)
	l := account(t, js, pb, hooks)
	checkLedger(t, l)
	checkStoredOnce(t, js, pb)
	// A record's key is <message id>.<endpoint id>.
	names := hooks.endpoints
	again := 0
	for _, key := range completed {
		msg, ep, ok := strings.Cut(key, ".")
		if !ok {
			continue
		}
		if hooks.count(names[ep], msg) > 1 {
			again++
		}
	}
	if again != 0 {
		t.Errorf("%d of the %d deliveries completed before the kill were sent again, want 0", again, len(completed))
	}
	t.Logf("%d deliveries completed at the kill, %d of them sent again; %d duplicates in all", len(completed), again, l.duplicated)
}

// TestNATSOutageErrorAnswersAreNotStored stops nats-server for 10 s under
// HTTP publishing (each event sent once, not retried) and accounts for
// every publish by its answer, as the API documents them: answered 2xx,
// stored once and delivered to every endpoint; answered 504 (the one
// error whose outcome is unknown), stored at most once; answered with any
// other error, absent from EVENTS. Every publish gets an answer: ingest
// answers 504 before the client's timeout whenever the event may have
// been stored (a publish that got none, counted as an error, was once
// found stored).
func TestNATSOutageErrorAnswersAreNotStored(t *testing.T) {
	n := testenv.StartNATS(t)
	p := newPipeline(t, n.URL(), 1)
	hooks := newHookLog(t, 0)
	tenant := p.setUp(t, hooks, "a", "b")
	pb := &publisher{url: "http://" + p.ingestHTTP, token: p.operatorToken, tenant: tenant}
	pb.init()
	stop := startLoad(pb)
	time.Sleep(2 * time.Second)
	n.Stop()
	time.Sleep(10 * time.Second)
	n.Start()
	time.Sleep(3 * time.Second)
	stop()
	js := n.JetStream(t)
	checkLedger(t, account(t, js, pb, hooks))
	// Not checkStoredOnce: here a publish answered 504 may be stored too.
	jobs := storedJobs(t, js)
	pb.mu.Lock()
	defer pb.mu.Unlock()
	for job, id := range pb.accepted {
		if jobs[job] != 1 {
			t.Errorf("publish of %s accepted as %s is stored %d times, want once", job, id, jobs[job])
		}
	}
	refused, unknown, unknownStored, unanswered := 0, 0, 0, 0
	for job, status := range pb.answered {
		switch status {
		case http.StatusGatewayTimeout:
			unknown++
			unknownStored += jobs[job]
			if jobs[job] > 1 {
				t.Errorf("publish of %s answered 504 is stored %d times, want at most once", job, jobs[job])
			}
		case -1:
			unanswered++
			t.Errorf("publish of %s got no answer within the client's %v (stored %d times): ingest must answer, 504 if the event may have been stored", job, pb.client.Timeout, jobs[job])
		default:
			refused++
			if jobs[job] != 0 {
				t.Errorf("publish of %s answered %d is stored %d times, want 0: only a 504 may leave the outcome unknown", job, status, jobs[job])
			}
		}
	}
	for job, n := range jobs {
		_, accepted := pb.accepted[job]
		_, answered := pb.answered[job]
		if !accepted && !answered && job != "job_probe" {
			t.Errorf("EVENTS holds %d events of job %s, which was never published", n, job)
		}
	}
	if refused == 0 {
		t.Error("no publish was answered with an error: the outage did not happen under load")
	}
	t.Logf("%d accepted (each stored once and delivered); %d answered with an error other than 504, none stored; %d answered 504, %d of them stored; %d unanswered",
		len(pb.accepted), refused, unknown, unknownStored, unanswered)
}

// TestRollingRestartLosesNothing stops every service gracefully (as SIGTERM
// does) and starts it again, one after the other, under load: nothing
// accepted is lost, every attempt has its record, every event is stored
// once.
func TestRollingRestartLosesNothing(t *testing.T) {
	n := testenv.StartNATS(t)
	p := newPipeline(t, n.URL(), 1)
	hooks := newHookLog(t, 0)
	tenant := p.setUp(t, hooks, "a", "b")
	pb := &publisher{url: "http://" + p.ingestHTTP, token: p.operatorToken, tenant: tenant, retry: true}
	pb.init()
	stop := startLoad(pb)
	for _, name := range []string{"delivery", "fanout", "ingest", "config"} {
		time.Sleep(1500 * time.Millisecond)
		started := time.Now()
		p.restart(name)
		t.Logf("%s restarted in %v", name, time.Since(started).Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	stop()
	js := n.JetStream(t)
	checkLedger(t, account(t, js, pb, hooks))
	checkStoredOnce(t, js, pb)
	t.Logf("publishers got %d error answers (each retried with its key)", pb.errors)
}
