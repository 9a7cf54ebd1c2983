// Package retryq is the retry schedule of deliveries: one Redis sorted set
// per delivery partition, scored by due time in Unix milliseconds, whose
// members are small references to deliveries (see Encode), never copies of
// their payloads.
//
// Due items are claimed with one Lua script per call that takes the items due
// and re-scores them to the end of a lease in the same step. A claimer that
// dies before calling Done loses nothing: its items come due again when the
// lease ends, and another claimer takes them. Claims are atomic, so while a
// lease lasts each item is held by one claimer.
//
// Keys are "<prefix>:{<partition>}": the hash tag puts each partition's
// schedule in one Redis Cluster slot, and every command touches one key.
//
// Redis replicates asynchronously, so a primary that fails can take its
// last writes with it. When the primaries have replicas (looked at every
// few seconds with INFO replication), a Schedule is followed by WAIT 1 on
// the same connection and succeeds only once a replica has it.
package retryq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// DefaultPrefix prefixes the keys of the schedule.
const DefaultPrefix = "ph:retry"

// Item is one scheduled delivery: a reference to the event in the EVENTS
// stream and the endpoint to deliver it to.
type Item struct {
	// Seq is the event's sequence in the EVENTS stream.
	Seq uint64
	// Endpoint is the endpoint id; it also picks the partition.
	Endpoint string
	// Attempt is the number of attempts already made.
	Attempt uint32
	// Hops is how many times the delivery has entered the schedule; it
	// makes each scheduling of one delivery a distinct member.
	Hops uint32
	// Flags are four bits for the caller (0–MaxFlags).
	Flags uint8
	// ResendID is the resend a scheduled delivery belongs to (empty for
	// the original delivery). It is part of the member, so a resend's
	// retry and the original's at the same attempt and hops are two items.
	ResendID string
	// Link is the span that scheduled the item (a failed attempt's), to
	// link the return to; zero for none. It is stored (8 bytes) only for
	// sampled attempts, so unsampled items are as small as before.
	Link trace.SpanID
	// LinkTrace is Link's trace when it is not the event's own (a resend's
	// attempt runs in the resend's trace); zero for the event's.
	LinkTrace trace.TraceID
}

// Claimed is an item taken by Claim, with the time it was due.
type Claimed struct {
	Item
	// Due is when the item was due (its score before the claim).
	Due time.Time
	// member is the stored member, for Done.
	member string
}

// ClaimResult is what one Claim took.
type ClaimResult struct {
	Items []Claimed
	// Malformed counts members that did not decode; they are removed.
	Malformed int
	// NextDue is the earliest score left in the partition after the claim
	// (possibly an item just leased), zero when the partition is empty.
	NextDue time.Time
}

// Options configure a Queue.
type Options struct {
	// Prefix prefixes the keys (default DefaultPrefix).
	Prefix string
	// Partitions is the number of delivery partitions; an item goes to
	// streams.Partition(item.Endpoint, Partitions).
	Partitions int
	// ReplicaWait bounds how long Schedule waits for a replica to
	// confirm its write when the primaries have replicas (default
	// DefaultReplicaWait; negative: never wait).
	ReplicaWait time.Duration
	// ReplicaCheck is how often the queue looks whether the primaries
	// have replicas (default DefaultReplicaCheck).
	ReplicaCheck time.Duration
}

// Queue is the retry schedule in one Redis (or Redis Cluster).
type Queue struct {
	rdb          redis.UniversalClient
	prefix       string
	partitions   int
	replicaWait  time.Duration
	replicaCheck time.Duration
	replicas     replicaState
}

// New returns a Queue over rdb. It makes no call.
func New(rdb redis.UniversalClient, opts Options) (*Queue, error) {
	if opts.Partitions <= 0 {
		return nil, fmt.Errorf("retryq: %d partitions", opts.Partitions)
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.ReplicaWait == 0 {
		opts.ReplicaWait = DefaultReplicaWait
	}
	if opts.ReplicaCheck <= 0 {
		opts.ReplicaCheck = DefaultReplicaCheck
	}
	return &Queue{rdb: rdb, prefix: opts.Prefix, partitions: opts.Partitions,
		replicaWait: opts.ReplicaWait, replicaCheck: opts.ReplicaCheck}, nil
}

// Partitions returns the number of partitions.
func (q *Queue) Partitions() int { return q.partitions }

// Key returns the sorted set of partition p.
func (q *Queue) Key(p int) string {
	return q.prefix + ":{" + strconv.Itoa(p) + "}"
}

// Partition returns the partition of it.
func (q *Queue) Partition(it Item) int {
	return streams.Partition(it.Endpoint, q.partitions)
}

// Entry is an item and the time it is due.
type Entry struct {
	Item Item
	Due  time.Time
}

// Schedule stores it, due at due. Scheduling an item already stored moves
// it to the new time. When the primaries have replicas, it returns only
// once a replica has the write too, else an error wrapping
// ErrNotReplicated: a write it confirmed survives a failover.
func (q *Queue) Schedule(ctx context.Context, it Item, due time.Time) error {
	return q.ScheduleMany(ctx, []Entry{{Item: it, Due: due}})
}

// ScheduleMany stores every entry in one round trip (per primary), and
// confirms it like Schedule. On error some may be stored; storing them
// again is harmless.
func (q *Queue) ScheduleMany(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	adds := make([]zadd, len(entries))
	for i, e := range entries {
		m, err := Encode(e.Item)
		if err != nil {
			return err
		}
		adds[i] = zadd{key: q.Key(q.Partition(e.Item)), z: redis.Z{Score: score(e.Due), Member: m}}
	}
	var err error
	switch {
	case q.confirmWanted(ctx):
		err = q.writeConfirmed(ctx, adds)
	case len(adds) == 1:
		err = q.rdb.ZAdd(ctx, adds[0].key, adds[0].z).Err()
	default:
		_, err = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, a := range adds {
				p.ZAdd(ctx, a.key, a.z)
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("retryq: schedule %d items: %w", len(entries), err)
	}
	return nil
}

// claimScript takes up to ARGV[2] members of KEYS[1] due by ARGV[1] (Unix
// ms), in score order, re-scores them to ARGV[3] (the end of the lease, a
// leaseScore: half a millisecond marks it as a lease), and
// returns them with their former scores and the earliest score left ("" when
// the set is empty). ZADD gets at most 500 members per call, well within
// Lua's stack for unpack.
var claimScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local n = #due / 2
local i = 1
while i <= n do
  local args = {}
  local j = i
  while j <= n and j < i + 500 do
    args[#args + 1] = ARGV[3]
    args[#args + 1] = due[2 * j - 1]
    j = j + 1
  end
  redis.call('ZADD', KEYS[1], 'XX', unpack(args))
  i = j
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local nextDue = ''
if #first == 2 then nextDue = first[2] end
return {due, nextDue}
`)

// Claim takes up to limit items of partition p due by now, in due order, and
// leases them until now+lease: until then no other Claim returns them. Call
// Done for each item handled; an item not Done comes due again when the
// lease ends.
func (q *Queue) Claim(ctx context.Context, p int, now time.Time, limit int, lease time.Duration) (ClaimResult, error) {
	if limit <= 0 {
		return ClaimResult{}, errors.New("retryq: claim of no items")
	}
	key := q.Key(p)
	v, err := claimScript.Run(ctx, q.rdb, []string{key}, score(now), limit, leaseScore(now.Add(lease))).Slice()
	if err != nil {
		return ClaimResult{}, fmt.Errorf("retryq: claim from %s: %w", key, err)
	}
	if len(v) != 2 {
		return ClaimResult{}, fmt.Errorf("retryq: claim from %s: reply of %d elements", key, len(v))
	}
	pairs, _ := v[0].([]any)
	var res ClaimResult
	if s, _ := v[1].(string); s != "" {
		if ms, err := strconv.ParseFloat(s, 64); err == nil {
			res.NextDue = fromScore(ms)
		}
	}
	var bad []any
	res.Items = make([]Claimed, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		member, _ := pairs[i].(string)
		s, _ := pairs[i+1].(string)
		ms, err := strconv.ParseFloat(s, 64)
		it, derr := Decode(member)
		if derr != nil || err != nil {
			bad = append(bad, member)
			continue
		}
		res.Items = append(res.Items, Claimed{Item: it, Due: fromScore(ms), member: member})
	}
	if len(bad) > 0 {
		res.Malformed = len(bad)
		if err := q.rdb.ZRem(ctx, key, bad...).Err(); err != nil {
			return res, fmt.Errorf("retryq: remove %d malformed members of %s: %w", len(bad), key, err)
		}
	}
	return res, nil
}

// Done removes claimed items from the schedule, in one round trip.
func (q *Queue) Done(ctx context.Context, items ...Claimed) error {
	if len(items) == 0 {
		return nil
	}
	byKey := map[string][]any{}
	for _, c := range items {
		m := c.member
		if m == "" {
			var err error
			if m, err = Encode(c.Item); err != nil {
				return err
			}
		}
		k := q.Key(q.Partition(c.Item))
		byKey[k] = append(byKey[k], m)
	}
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, ms := range byKey {
			p.ZRem(ctx, k, ms...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retryq: done with %d items: %w", len(items), err)
	}
	return nil
}

// NextDue returns, for each partition, the earliest score in its schedule
// (zero when empty), in one round trip.
func (q *Queue) NextDue(ctx context.Context) ([]time.Time, error) {
	cmds := make([]*redis.ZSliceCmd, q.partitions)
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.ZRangeWithScores(ctx, q.Key(i), 0, 0)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retryq: peek the schedules: %w", err)
	}
	out := make([]time.Time, q.partitions)
	for i, c := range cmds {
		if zs := c.Val(); len(zs) > 0 {
			out[i] = fromScore(zs[0].Score)
		}
	}
	return out, nil
}

// Len returns the number of items in partition p, leased ones included.
func (q *Queue) Len(ctx context.Context, p int) (int64, error) {
	n, err := q.rdb.ZCard(ctx, q.Key(p)).Result()
	if err != nil {
		return 0, fmt.Errorf("retryq: size of %s: %w", q.Key(p), err)
	}
	return n, nil
}

// Lens returns the number of items in each partition, leased ones
// included, in one round trip.
func (q *Queue) Lens(ctx context.Context) ([]int64, error) {
	cmds := make([]*redis.IntCmd, q.partitions)
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.ZCard(ctx, q.Key(i))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retryq: size of the schedules: %w", err)
	}
	out := make([]int64, q.partitions)
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// score is the sorted-set score of t: Unix milliseconds.
func score(t time.Time) float64 { return float64(t.UnixMilli()) }

func fromScore(ms float64) time.Time { return time.UnixMilli(int64(ms)) }
