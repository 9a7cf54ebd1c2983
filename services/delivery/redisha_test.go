package delivery

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// TestRedisFailoverLosesNoRetry: a worker on a Sentinel client, deliveries
// failing so that every one has been acked in DELIVERIES and waits only in
// the Redis schedule; the primary is SIGKILLed and Sentinel promotes the
// replica; more deliveries arrive during and after the failover. Once the
// endpoint recovers, every delivery — those that waited in the schedule
// through the failover and those that came after — reaches it, each once.
func TestRedisFailoverLosesNoRetry(t *testing.T) {
	e := newEnv(t)
	set := testenv.StartSentinelSet(t)
	rdb, _, err := redisconn.New(set.URL(), redisconn.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })

	s := newSink(t)
	var up atomic.Bool
	s.setAnswer(func(string, int) (int, http.Header) {
		if up.Load() {
			return http.StatusOK, nil
		}
		return http.StatusServiceUnavailable, nil
	})
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	// The first retry is due long after the failover; later ones quickly.
	cfg.Schedule = []time.Duration{0, 12 * time.Second, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond,
		200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	cfg.Jitter = -1
	cfg.RetryDelay = 200 * time.Millisecond
	e.startWorker(t, cfg, workerOptions{redis: rdb})

	ctx := context.Background()
	const before, during = 100, 20
	var ids []string
	publish := func(n int) {
		for range n {
			d := newDelivery(ep)
			e.publish(ctx, t, d)
			ids = append(ids, d.MessageId)
		}
	}
	publish(before)
	// Every delivery failed once and was acked: the schedule holds the
	// only copy of each.
	e.waitDeliveriesEmpty(t)
	if n, err := scheduled(rdb); err != nil || n != before {
		t.Fatalf("%d retries in the schedule before the failover (%v), want %d", n, err, before)
	}
	if _, ok := s.counts(); ok != 0 {
		t.Fatalf("%d deliveries succeeded while the endpoint was down", ok)
	}

	killed := time.Now()
	old := set.KillPrimary()
	publish(during) // tried (and failed) while Redis has no primary
	set.WaitFailover(old, 30*time.Second)
	failover := time.Since(killed)
	// The retries that waited through the failover are all on the new
	// primary, and those of the deliveries made meanwhile join them.
	testenv.WaitFor(t, waitTimeout, func() error {
		if n, err := scheduled(rdb); err != nil || n != before+during {
			return fmt.Errorf("%d retries in the schedule after the failover (%v), want %d", n, err, before+during)
		}
		return nil
	})
	e.waitDeliveriesEmpty(t)
	up.Store(true)
	publish(during) // after the failover, with the endpoint up
	delivered := expectEachDeliveredOnce(t, e, s, rdb, ids)
	t.Logf("%d retries waiting in the schedule at the SIGKILL of the primary, %d deliveries during the failover (%v until every Sentinel named the new primary), %d after: %d delivered, 0 lost, %d duplicates",
		before, during, failover.Round(time.Millisecond), during, delivered, s.duplicates())
}

// scheduled counts the items in the one-partition schedule of the tests.
func scheduled(rdb redis.UniversalClient) (int64, error) {
	q, err := retryq.New(rdb, retryq.Options{Partitions: 1})
	if err != nil {
		return 0, err
	}
	return q.Len(context.Background(), 0)
}

// TestDeliveryOnRedisCluster: a worker whose Redis is a three-master
// Redis Cluster (completion records, failure runs and rate limiters of
// different endpoints and messages in different slots; the multi-partition
// schedule is pkg/retryq's test), two endpoints whose first answer to each
// delivery fails, one of them rate limited: every delivery reaches its
// endpoint once, after one retry from the schedule, and the schedule ends
// empty.
func TestDeliveryOnRedisCluster(t *testing.T) {
	e := newEnv(t)
	rdb, _, err := redisconn.New(testenv.StartRedisCluster(t).URL(), redisconn.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	cfg := testConfig()
	s := newSink(t)
	s.setAnswer(firstFails)
	eps := []*configv1.Endpoint{newEndpoint(t, s.srv.URL), newEndpoint(t, s.srv.URL)}
	eps[1].RateLimit = 50
	for _, ep := range eps {
		e.config.put(ep)
	}
	e.startWorker(t, cfg, workerOptions{redis: rdb})

	const n = 40
	var ids []string
	for i := range n {
		d := newDelivery(eps[i%2])
		e.publish(context.Background(), t, d)
		ids = append(ids, d.MessageId)
	}
	s.waitSucceeded(t, ids)
	e.waitDeliveriesEmpty(t)
	testenv.WaitFor(t, waitTimeout, func() error {
		if n, err := scheduled(rdb); err != nil || n != 0 {
			return fmt.Errorf("retry schedule holds %d items (%v)", n, err)
		}
		return nil
	})
	if req, ok := s.counts(); req != 2*n || ok != n {
		t.Errorf("%d requests, %d answered 2xx; want %d and %d (each delivery failed once, then succeeded)", req, ok, 2*n, n)
	}
	if d := s.duplicates(); d != 0 {
		t.Errorf("%d duplicate deliveries, want none", d)
	}
}

// TestReplicaDropLeavesDeliveriesInTheStream: a worker on a Redis primary
// with one replica (the Sentinel set-up), its endpoint failing so that every
// delivery goes to the retry schedule. The replica is SIGKILLed: the next
// schedule write's WAIT is confirmed by nobody (ErrNotReplicated), so that
// delivery is nakked and stays in DELIVERIES rather than being acked with
// its retry possibly only on the primary; it comes back after RetryDelay,
// the primary now known to have no replica takes the write unconfirmed, and
// it is acked. Once the endpoint recovers, every delivery, those made
// before and after the drop, reaches it exactly once.
func TestReplicaDropLeavesDeliveriesInTheStream(t *testing.T) {
	e := newEnv(t)
	set := testenv.StartSentinelSet(t)
	rdb, _, err := redisconn.New(set.URL(), redisconn.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })

	s := newSink(t)
	var up atomic.Bool
	s.setAnswer(func(string, int) (int, http.Header) {
		if up.Load() {
			return http.StatusOK, nil
		}
		return http.StatusServiceUnavailable, nil
	})
	ep := newEndpoint(t, s.srv.URL)
	e.config.put(ep)
	cfg := testConfig()
	cfg.Schedule = []time.Duration{0, 3 * time.Second, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond,
		200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
	cfg.Jitter = -1
	cfg.RetryDelay = 300 * time.Millisecond
	logs := &testenv.Buffer{}
	e.startWorker(t, cfg, workerOptions{redis: rdb, logs: logs})

	ctx := context.Background()
	var ids []string
	publish := func(n int) {
		for range n {
			d := newDelivery(ep)
			e.publish(ctx, t, d)
			ids = append(ids, d.MessageId)
		}
	}
	const before, after = 20, 20
	publish(before)
	e.waitDeliveriesEmpty(t)
	if n, err := scheduled(rdb); err != nil || n != before {
		t.Fatalf("%d retries in the schedule with the replica up (%v), want %d", n, err, before)
	}
	if strings.Contains(logs.String(), "not confirmed by a Redis replica") {
		t.Fatal("a schedule write was unconfirmed while the replica was up")
	}

	replica := set.Nodes[0]
	if set.Primary() == replica {
		replica = set.Nodes[1]
	}
	replica.Kill()
	publish(after)
	// Each comes back from the stream until a write is taken; none is
	// acked before its retry is written.
	e.waitDeliveriesEmpty(t)
	if n, err := scheduled(rdb); err != nil || n != before+after {
		t.Fatalf("%d retries in the schedule after the replica dropped (%v), want %d", n, err, before+after)
	}
	unconfirmed := strings.Count(logs.String(), "not confirmed by a Redis replica")
	if unconfirmed == 0 {
		t.Error("no schedule write was reported unconfirmed after the replica dropped")
	}
	up.Store(true)
	delivered := expectEachDeliveredOnce(t, e, s, rdb, ids)
	t.Logf("%d deliveries before the replica dropped, %d after; %d schedule writes unconfirmed (each delivery left in the stream, nakked); %d delivered, 0 lost, %d duplicates",
		before, after, unconfirmed, delivered, s.duplicates())
}

// expectEachDeliveredOnce waits until every one of ids has succeeded and
// neither the stream nor the retry schedule holds anything, then fails the
// test for a delivery lost, one never published, or one sent twice after a
// success. It returns how many distinct deliveries succeeded.
func expectEachDeliveredOnce(t *testing.T, e *env, s *sink, rdb redis.UniversalClient, ids []string) int {
	t.Helper()
	s.waitSucceeded(t, ids)
	e.waitDeliveriesEmpty(t)
	testenv.WaitFor(t, waitTimeout, func() error {
		if n, err := scheduled(rdb); err != nil || n != 0 {
			return fmt.Errorf("retry schedule holds %d items (%v)", n, err)
		}
		return nil
	})
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]bool{}
	for _, id := range s.succeeded() {
		if !want[id] {
			t.Errorf("the endpoint got %s, which was never published", id)
		}
		got[id] = true
	}
	if lost := len(want) - len(got); lost != 0 {
		t.Errorf("%d of %d deliveries lost", lost, len(want))
	}
	if d := s.duplicates(); d != 0 {
		t.Errorf("%d deliveries sent twice after a success, want none", d)
	}
	return len(got)
}
