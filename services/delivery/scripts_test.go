package delivery

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/embedded"
	"github.com/pulsehooks/pulsehooks/pkg/redisconn"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestRedisScripts runs the rate-limit and failure-run scripts against
// redis-server, a Redis Cluster (every script and transaction touches one
// key; a completion record and the end of a failure run, in different
// slots, share a pipeline, which the cluster client splits by node), and
// the in-process server of the standalone binary.
func TestRedisScripts(t *testing.T) {
	for _, srv := range []struct {
		name  string
		start func(t *testing.T) redis.UniversalClient
	}{
		{"redis-server", func(t *testing.T) redis.UniversalClient { return testenv.StartRedis(t).Client(t) }},
		{"redis-cluster", func(t *testing.T) redis.UniversalClient {
			rdb, _, err := redisconn.New(testenv.StartRedisCluster(t).URL(), redisconn.Settings{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = rdb.Close() })
			return rdb
		}},
		{"in-process", func(t *testing.T) redis.UniversalClient {
			m, err := embedded.StartRedis("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.Close)
			c := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}},
	} {
		t.Run(srv.name, func(t *testing.T) {
			rdb := srv.start(t)
			ctx := context.Background()
			now := time.UnixMilli(1_800_000_000_000)

			l := limiter{rdb: rdb}
			var got []time.Duration
			for range 4 {
				wait, err := l.reserve(ctx, "ep_a", 4, now) // a slot every 250 ms
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, wait)
			}
			if want := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond}; !slices.Equal(got, want) {
				t.Errorf("rate-limit waits = %v, want %v", got, want)
			}
			if wait, err := l.reserve(ctx, "ep_a", 4, now.Add(10*time.Second)); err != nil || wait != 0 {
				t.Errorf("reserve after the backlog passed = %v, %v; want 0", wait, err)
			}
			if wait, err := l.reserve(ctx, "ep_b", 3, now); err != nil || wait != 0 {
				t.Errorf("another endpoint's first reserve = %v, %v; want 0", wait, err)
			}
			if wait, _ := l.reserve(ctx, "ep_b", 3, now); wait != 334*time.Millisecond {
				t.Errorf("second slot at 3/s = %v, want 334ms (rounded up)", wait)
			}

			s := streaks{rdb: rdb, keep: time.Hour}
			for i, at := range []time.Time{now, now.Add(time.Minute), now.Add(2 * time.Minute)} {
				first, err := s.failed(ctx, "ep_a", at)
				if err != nil || !first.Equal(now) {
					t.Errorf("failure %d: run began %v, %v; want %v", i, first, err, now)
				}
			}
			if ttl := rdb.PTTL(ctx, failingKey("ep_a")).Val(); ttl <= 0 || ttl > time.Hour {
				t.Errorf("failure run key TTL = %v, want up to an hour", ttl)
			}
			if err := newIdempotency(rdb, time.Hour).markDone(ctx, &eventv1.Delivery{MessageId: "msg_1", EndpointId: "ep_a"}, &eventv1.Attempt{Id: "atmpt_1"}); err != nil {
				t.Fatal(err)
			}
			if first, _ := s.failed(ctx, "ep_a", now.Add(time.Hour)); !first.Equal(now.Add(time.Hour)) {
				t.Errorf("after a success the run began %v, want a new run at %v", first, now.Add(time.Hour))
			}
			if err := s.clear(ctx, "ep_a"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
