package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of three redis-server masters (no
// replicas) on free loopback ports, the 16,384 slots split between them.
// Its processes are killed when the test ends.
type RedisCluster struct {
	// Nodes are the masters; Nodes[i] holds the i-th third of the slots.
	Nodes [3]*RedisNode
}

// StartRedisCluster starts the cluster and waits until every node reports
// cluster_state:ok. A missing redis-server fails the test.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	bin, err := RedisBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &RedisCluster{}
	var buses [3]int
	for i := range c.Nodes {
		port, bus := freePort(t), freePort(t)
		buses[i] = bus
		d := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		c.Nodes[i] = startNode(t, "redis-server cluster node "+strconv.Itoa(i), bin, port,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
			"--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "no", "--loglevel", "warning",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"),
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000")
	}
	ctx := context.Background()
	const slots = 16384
	for i, n := range c.Nodes {
		rc := redis.NewClient(&redis.Options{Addr: n.Addr()})
		lo, hi := i*slots/len(c.Nodes), (i+1)*slots/len(c.Nodes)-1
		if err := rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", n.Addr(), err)
		}
		if i > 0 {
			first := c.Nodes[0]
			if err := rc.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", first.port, buses[0]).Err(); err != nil {
				t.Fatalf("CLUSTER MEET from %s: %v", n.Addr(), err)
			}
		}
		_ = rc.Close()
	}
	WaitFor(t, 20*time.Second, func() error {
		for _, n := range c.Nodes {
			rc := redis.NewClient(&redis.Options{Addr: n.Addr()})
			info, err := rc.ClusterInfo(ctx).Result()
			_ = rc.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return fmt.Errorf("%s: %s", n.Addr(), strings.Join(strings.Fields(info)[:6], " "))
			}
		}
		return nil
	})
	return c
}

// URL is the redis+cluster:// URL of the cluster (pkg/redisconn).
func (c *RedisCluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}
