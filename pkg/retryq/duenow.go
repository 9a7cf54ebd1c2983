package retryq

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaseMark is added to the score of a claimed item: scheduled items are
// scored in whole milliseconds, so a score with half a millisecond is a
// lease, told apart from a due time without another key. Times read back
// from scores drop it (fromScore truncates).
const leaseMark = 0.5

// leaseScore is the score of an item leased until t.
func leaseScore(t time.Time) float64 { return score(t) + leaseMark }

// scanCount is the COUNT hint of each ZSCAN call of DueNow.
const scanCount = 1000

// dueNowBatch bounds the members one dueNowScript call looks at.
const dueNowBatch = 500

// dueNowScript makes members of KEYS[1] due at ARGV[1] (Unix ms), one check
// and write per member in one atomic step, so no claim interleaves with it:
// a member gone (claimed and done) or leased (its score has the lease mark:
// a claimer is returning it) is left alone; one due by ARGV[1] already is
// left as it is; one due later is moved to ARGV[1] (ZADD XX: never added
// back). It returns how many members are due by ARGV[1] after the call.
// ARGV[2…] are the members.
var dueNowScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s then
    local v = tonumber(s)
    if v % 1 == 0 then
      if v > now then
        redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
      end
      n = n + 1
    end
  end
end
return n
`)

// DueNow makes every item of endpoint in its partition's schedule that no
// claimer holds, and that skip (if not nil) does not exclude, due at now,
// and returns how many such items are due by now afterwards (those moved
// and those due already). Items leased by a claimer are left to it, so no
// item is returned to the stream twice; an item scheduled while DueNow
// runs may be missed. It reads the partition with ZSCAN (the items of every
// endpoint of the partition go over the wire, decoded here) and writes in
// batches of a few hundred members per script call.
func (q *Queue) DueNow(ctx context.Context, endpoint string, now time.Time, skip func(Item) bool) (int, error) {
	if endpoint == "" {
		return 0, fmt.Errorf("retryq: due now: no endpoint")
	}
	key := q.Key(q.Partition(Item{Endpoint: endpoint}))
	seen := map[string]bool{}
	var members []any
	var cursor uint64
	for {
		keys, next, err := q.rdb.ZScan(ctx, key, cursor, "", scanCount).Result()
		if err != nil {
			return 0, fmt.Errorf("retryq: scan %s: %w", key, err)
		}
		// keys alternate member, score.
		for i := 0; i+1 < len(keys); i += 2 {
			m := keys[i]
			if seen[m] {
				continue // ZSCAN may return a member twice
			}
			seen[m] = true
			it, err := Decode(m)
			if err != nil || it.Endpoint != endpoint || (skip != nil && skip(it)) {
				continue
			}
			members = append(members, m)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	total := 0
	for start := 0; start < len(members); start += dueNowBatch {
		batch := members[start:min(start+dueNowBatch, len(members))]
		args := append([]any{int64(score(now))}, batch...)
		n, err := dueNowScript.Run(ctx, q.rdb, []string{key}, args...).Int()
		if err != nil {
			return total, fmt.Errorf("retryq: make %d items of %s due in %s: %w", len(batch), endpoint, key, err)
		}
		total += n
	}
	return total, nil
}
