package retryq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of the replica confirmation.
const (
	// DefaultReplicaWait bounds how long a write waits for a replica.
	DefaultReplicaWait = 500 * time.Millisecond
	// DefaultReplicaCheck is how often the queue looks whether the
	// primaries have replicas.
	DefaultReplicaCheck = 5 * time.Second
)

// ErrNotReplicated is returned (wrapped) by Schedule and ScheduleMany
// when the primaries have replicas but none confirmed the write in time.
// The write may still be in the schedule (and may be lost in a failover):
// the caller must keep its own copy of the delivery.
var ErrNotReplicated = errors.New("retryq: no replica confirmed the write in time")

// replicaState is what the queue last learnt of the primaries' replicas.
type replicaState struct {
	mu       sync.Mutex
	present  bool // every primary had a replica connected
	checked  time.Time
	checking bool
}

// confirmWanted reports whether writes must be confirmed by a replica:
// whether every primary had at least one replica connected when last
// looked at (INFO replication, at most every ReplicaCheck). A failed look
// (Redis unreachable, or a server without INFO replication) keeps the last
// answer until the next look.
func (q *Queue) confirmWanted(ctx context.Context) bool {
	if q.replicaWait <= 0 {
		return false
	}
	r := &q.replicas
	r.mu.Lock()
	// Until a first look (and after an unconfirmed write) every caller
	// looks itself, so none writes unconfirmed on a stale answer;
	// afterwards one looks while the others use the last answer.
	if !r.checked.IsZero() && (r.checking || time.Since(r.checked) < q.replicaCheck) {
		p := r.present
		r.mu.Unlock()
		return p
	}
	r.checking = true
	r.mu.Unlock()

	n, err := q.minReplicas(ctx)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.checking = false
	r.checked = time.Now()
	if err == nil {
		r.present = n > 0
	}
	return r.present
}

// recheck makes the next writes look at the replicas again (after a
// write that none confirmed: the replica may be gone).
func (q *Queue) recheck() {
	q.replicas.mu.Lock()
	q.replicas.checked = time.Time{}
	q.replicas.mu.Unlock()
}

// minReplicas returns the fewest replicas connected to any primary.
func (q *Queue) minReplicas(ctx context.Context) (int, error) {
	c, ok := q.rdb.(*redis.ClusterClient)
	if !ok {
		return connectedReplicas(ctx, q.rdb)
	}
	var mu sync.Mutex
	least := -1
	err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := connectedReplicas(ctx, node)
		if err != nil {
			return err
		}
		mu.Lock()
		if least < 0 || n < least {
			least = n
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return 0, err
	}
	return max(least, 0), nil
}

// connectedReplicas reads connected_slaves from INFO replication.
func connectedReplicas(ctx context.Context, c redis.Cmdable) (int, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, fmt.Errorf("retryq: INFO replication: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("retryq: no connected_slaves in INFO replication")
}

// zadd is one ZADD of a write.
type zadd struct {
	key string
	z   redis.Z
}

// writeConfirmed runs the ZADDs followed by WAIT 1 on the connection of
// each primary they go to (WAIT confirms the writes made before it on its
// own connection), and fails with ErrNotReplicated when a primary's
// replicas did not confirm in ReplicaWait.
func (q *Queue) writeConfirmed(ctx context.Context, adds []zadd) error {
	groups := map[string][]zadd{}
	nodes := map[string]redis.Cmdable{}
	if c, ok := q.rdb.(*redis.ClusterClient); ok {
		for _, a := range adds {
			node, err := c.MasterForKey(ctx, a.key)
			if err != nil {
				return fmt.Errorf("retryq: primary of %s: %w", a.key, err)
			}
			addr := node.Options().Addr
			groups[addr] = append(groups[addr], a)
			nodes[addr] = node
		}
	} else {
		groups[""], nodes[""] = adds, q.rdb
	}
	for addr, g := range groups {
		var wait *redis.Cmd
		_, err := nodes[addr].Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, a := range g {
				p.ZAdd(ctx, a.key, a.z)
			}
			wait = p.Do(ctx, "WAIT", 1, q.replicaWait.Milliseconds())
			return nil
		})
		if err != nil {
			return err
		}
		n, err := wait.Int()
		if err != nil {
			return fmt.Errorf("WAIT: %w", err)
		}
		if n < 1 {
			q.recheck()
			return fmt.Errorf("%w (%d replicas in %v)", ErrNotReplicated, n, q.replicaWait)
		}
	}
	return nil
}
