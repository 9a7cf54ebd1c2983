package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// rateKeyPrefix prefixes the Redis key of an endpoint's rate limiter:
// ph:rl:<endpoint_id>, holding its theoretical arrival time (Unix ms).
const rateKeyPrefix = "ph:rl:"

// maxInlineRateWait is the longest a delivery waits for its rate-limit slot
// in its lane; a longer wait puts it off to the schedule.
const maxInlineRateWait = 50 * time.Millisecond

// reserveScript is a GCRA limiter with reservations and no burst: each call
// takes the next free slot of the endpoint (slots 1/rate apart, shared by
// every worker) and returns how many milliseconds from now it starts, 0 when
// the request may go at once. KEYS[1] = limiter; ARGV[1] = now (Unix ms);
// ARGV[2] = slot length (ms).
var reserveScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local newtat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', newtat), 'PX', math.ceil(newtat - now) + 1000)
return math.ceil(tat - now)
`)

// limiter enforces endpoints' rate limits across all workers.
type limiter struct {
	rdb redis.UniversalClient
}

// reserve takes the next slot of endpoint ep, limited to rate requests per
// second, and returns how long from now it starts.
func (l limiter) reserve(ctx context.Context, ep string, rate uint32, now time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	interval := 1000 / float64(rate)
	ms, err := reserveScript.Run(ctx, l.rdb, []string{rateKeyPrefix + ep}, now.UnixMilli(), interval).Int64()
	if err != nil {
		return 0, fmt.Errorf("rate limit of %s: %w", ep, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}
