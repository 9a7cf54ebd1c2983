package testenv

import (
	"context"
	"testing"
	"time"

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
