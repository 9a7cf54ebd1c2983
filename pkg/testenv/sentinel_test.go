package testenv

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
)

// TestSentinelSetFailover writes through a Sentinel client, waits for the
// replica, kills the primary and reads the write back from the new one.
func TestSentinelSetFailover(t *testing.T) {
	s := StartSentinelSet(t)
	rdb, _, err := redisconn.New(s.URL(), redisconn.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rdb.Close() }()
	ctx := context.Background()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Do(ctx, "WAIT", 1, 1000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v; want 1", n, err)
	}
	t0 := time.Now()
	old := s.KillPrimary()
	p := s.WaitFailover(old, 30*time.Second)
	if p == old {
		t.Fatalf("the killed node %s is still the primary", p.Addr())
	}
	t.Logf("failover from %s to %s in %v", old.Addr(), p.Addr(), time.Since(t0))
	WaitFor(t, 10*time.Second, func() error {
		got, err := rdb.Get(ctx, "k").Result()
		if err == nil && got != "v" {
			t.Fatalf("GET k = %q after the failover, want v", got)
		}
		return err
	})
}

// TestRedisClusterServes: a client from the cluster URL reaches keys of
// every node's slots.
func TestRedisClusterServes(t *testing.T) {
	c := StartRedisCluster(t)
	rdb, o, err := redisconn.New(c.URL(), redisconn.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rdb.Close() }()
	if o.Kind != redisconn.Cluster {
		t.Fatalf("kind %v, want cluster", o.Kind)
	}
	ctx := context.Background()
	nodes := map[string]bool{}
	for i := range 30 {
		k := "k" + strconv.Itoa(i)
		if err := rdb.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		m, err := rdb.(*redis.ClusterClient).MasterForKey(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		nodes[m.Options().Addr] = true
	}
	if len(nodes) != 3 {
		t.Errorf("30 keys landed on %d nodes, want 3", len(nodes))
	}
}
