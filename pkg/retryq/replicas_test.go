package retryq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestConfirmedScheduleSurvivesFailover schedules items through a Sentinel
// client, confirmed by the replica and not, stalls the replica, writes
// once more each way, SIGKILLs the primary and looks on the promoted
// replica: every write Schedule reported stored is there, the confirmed
// write made during the stall was reported not stored, and the
// unconfirmed one was lost. It logs what the confirmation costs.
func TestConfirmedScheduleSurvivesFailover(t *testing.T) {
	set := testenv.StartSentinelSet(t)
	rdb, _, err := redisconn.New(set.URL(), redisconn.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	const partitions, n = 8, 1000
	confirmed, err := New(rdb, Options{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	unconfirmed, err := New(rdb, Options{Prefix: "unconfirmed", Partitions: partitions, ReplicaWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	eps := make([]string, partitions)
	for p := range eps {
		eps[p] = endpointIn(p, partitions)
	}
	due := time.Now().Add(time.Hour)
	schedule := func(q *Queue) time.Duration {
		t0 := time.Now()
		for i := range n {
			if err := q.Schedule(ctx, Item{Seq: uint64(i + 1), Endpoint: eps[i%partitions], Attempt: 1, Hops: 1}, due); err != nil {
				t.Fatalf("schedule item %d: %v", i, err)
			}
		}
		return time.Since(t0) / n
	}
	plain := schedule(unconfirmed)
	withWait := schedule(confirmed)
	t.Logf("one Schedule, sequential, redis-server 7.0 on loopback with one replica: %v unconfirmed, %v with WAIT 1", plain, withWait)

	// Stall the replica and cut its link, so writes from now on reach only
	// the primary (it cannot reconnect while it sleeps), then kill the
	// primary.
	primary := set.Primary()
	replica := set.Nodes[0]
	if replica == primary {
		replica = set.Nodes[1]
	}
	sleeping := make(chan error, 1)
	go func() {
		c := redis.NewClient(&redis.Options{Addr: replica.Addr(), ReadTimeout: 10 * time.Second})
		defer func() { _ = c.Close() }()
		sleeping <- c.Do(ctx, "DEBUG", "SLEEP", 1.5).Err()
	}()
	time.Sleep(100 * time.Millisecond) // DEBUG SLEEP has reached the replica
	pc := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	if err := pc.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatalf("cut the replica's link: %v", err)
	}
	_ = pc.Close()
	lost := Item{Seq: n + 1, Endpoint: eps[0], Attempt: 1, Hops: 1}
	if err := confirmed.Schedule(ctx, lost, due); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Schedule while the replica sleeps: %v, want ErrNotReplicated", err)
	}
	if err := unconfirmed.Schedule(ctx, lost, due); err != nil {
		t.Fatalf("unconfirmed Schedule while the replica sleeps: %v", err)
	}
	primary.Kill()
	if err := <-sleeping; err != nil {
		t.Fatalf("DEBUG SLEEP on the replica: %v", err)
	}
	set.WaitFailover(primary, 30*time.Second)
	count := func(q *Queue) int64 {
		var total int64
		testenv.WaitFor(t, 10*time.Second, func() error {
			total = 0
			for p := range partitions {
				l, err := q.Len(ctx, p)
				if err != nil {
					return err
				}
				total += l
			}
			return nil
		})
		return total
	}
	if got := count(confirmed); got != n {
		t.Errorf("%d confirmed items in the schedule after the failover, want %d", got, n)
	}
	// The unconfirmed write the replica never saw is gone: what WAIT is for.
	if got := count(unconfirmed); got != n {
		t.Errorf("%d unconfirmed items in the schedule after the failover, want %d (the one written while the replica slept lost)", got, n)
	}
}

// TestScheduleWithoutReplicas: a lone primary is not asked to WAIT, and a
// primary whose replica died answers one write with ErrNotReplicated, then
// takes writes unconfirmed.
func TestScheduleWithoutReplicas(t *testing.T) {
	ctx := context.Background()
	it := Item{Seq: 1, Endpoint: endpointIn(0, 1), Attempt: 1}
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		q := newQueue(t, rdb, 1)
		if err := q.Schedule(ctx, it, time.Now()); err != nil {
			t.Fatal(err)
		}
		if q.confirmWanted(ctx) {
			t.Fatal("a Redis without replicas is asked to confirm writes")
		}
	})

	set := testenv.StartSentinelSet(t)
	rdb, _, err := redisconn.New(set.URL(), redisconn.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	q, err := New(rdb, Options{Partitions: 1, ReplicaCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Schedule(ctx, it, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !q.confirmWanted(ctx) {
		t.Fatal("a primary with a replica is not asked to confirm writes")
	}
	replica := set.Nodes[0]
	if set.Primary() == replica {
		replica = set.Nodes[1]
	}
	replica.Kill()
	err = q.Schedule(ctx, it, time.Now())
	if !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Schedule with the replica dead: %v, want ErrNotReplicated", err)
	}
	if err := q.Schedule(ctx, it, time.Now()); err != nil {
		t.Fatalf("Schedule after the queue saw the replica go: %v", err)
	}
	if q.confirmWanted(ctx) {
		t.Fatal("a primary whose replica is gone is still asked to confirm writes")
	}
}

// TestScheduleAcrossPartitions: one ScheduleMany, NextDue and Done over
// items of every partition, whose keys are in different Redis Cluster
// slots (and nodes).
func TestScheduleAcrossPartitions(t *testing.T) {
	servers(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		const partitions = 16
		q := newQueue(t, rdb, partitions)
		base := time.UnixMilli(1_800_000_000_000)
		var entries []Entry
		for p := range partitions {
			entries = append(entries, Entry{Item{Seq: uint64(p + 1), Endpoint: endpointIn(p, partitions), Attempt: 1}, base.Add(time.Duration(p) * time.Second)})
		}
		if err := q.ScheduleMany(ctx, entries); err != nil {
			t.Fatal(err)
		}
		next, err := q.NextDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var claimed []Claimed
		for p := range partitions {
			if want := base.Add(time.Duration(p) * time.Second); !next[p].Equal(want) {
				t.Errorf("NextDue[%d] = %v, want %v", p, next[p], want)
			}
			res, err := q.Claim(ctx, p, base.Add(time.Hour), 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Items) != 1 || res.Items[0].Seq != uint64(p+1) {
				t.Fatalf("Claim(%d) = %+v, want sequence %d", p, res.Items, p+1)
			}
			claimed = append(claimed, res.Items...)
		}
		if err := q.Done(ctx, claimed...); err != nil {
			t.Fatal(err)
		}
		for p := range partitions {
			if n, err := q.Len(ctx, p); err != nil || n != 0 {
				t.Errorf("Len(%d) after Done = %d, %v; want 0", p, n, err)
			}
		}
	})
}
