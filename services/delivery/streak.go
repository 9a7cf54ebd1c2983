package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// failingKeyPrefix prefixes the Redis key holding when an endpoint's current
// run of failures began: ph:failing:<endpoint_id> = Unix ms. Any success
// deletes it.
const failingKeyPrefix = "ph:failing:"

func failingKey(ep string) string { return failingKeyPrefix + ep }

// streakScript notes a failure of an endpoint and returns when its run of
// failures began. The key lives for ARGV[2] ms after the latest failure, so
// a run is broken by a success, or by that long without any attempt failing.
// KEYS[1] = the endpoint's key; ARGV[1] = now (Unix ms).
var streakScript = redis.NewScript(`
local first = redis.call('GET', KEYS[1])
if not first then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return tonumber(ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tonumber(first)
`)

// streaks tracks how long endpoints have been failing, across all workers.
type streaks struct {
	rdb redis.UniversalClient
	// keep is how long a run survives without failures: the disable
	// threshold plus the schedule's longest delay, so the gaps between the
	// attempts of a failing endpoint never break it.
	keep time.Duration
}

// failed notes a failure of ep at now and returns when its run began.
func (s streaks) failed(ctx context.Context, ep string, now time.Time) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	ms, err := streakScript.Run(ctx, s.rdb, []string{failingKey(ep)}, now.UnixMilli(), s.keep.Milliseconds()).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("note failure of %s: %w", ep, err)
	}
	return time.UnixMilli(ms), nil
}

// clear ends ep's run of failures (after it was disabled).
func (s streaks) clear(ctx context.Context, ep string) error {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	return s.rdb.Del(ctx, failingKey(ep)).Err()
}
