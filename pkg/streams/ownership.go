package streams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Partition ownership of the delivery workers: who is alive, and who holds
// which partition. The buckets are on file although their keys live
// seconds, so that they are not at the mercy of how a restarted server
// treats memory streams; at most a few dozen small writes a second.
const (
	// DeliveryMembers is the KV bucket in which every delivery worker keeps
	// a key (its member id) alive while it runs.
	DeliveryMembers = "ph_delivery_members"
	// DeliveryLeases is the KV bucket of partition leases: key LeaseKey(i),
	// value the member id of the worker that holds partition i, renewed by
	// compare-and-set on its revision.
	DeliveryLeases = "ph_delivery_leases"
	// DefaultLeaseTTL is how long a member key or a partition lease lives
	// without being written again (the buckets' MaxAge).
	DefaultLeaseTTL = 5 * time.Second
	// DefaultDeliveryAckWait is the ack wait of the partition consumers: a
	// killed worker's unacked deliveries return after it. Workers keep the
	// deliveries they hold alive with InProgress every AckWait/3.
	DefaultDeliveryAckWait = 10 * time.Second
	// DeliveryPinnedTTL is the pinned TTL of the partition consumers: a pin
	// whose client stops pulling lapses after it.
	DeliveryPinnedTTL = 5 * time.Second
)

// LeaseKey is the DeliveryLeases key of partition i.
func LeaseKey(i int) string {
	return "p" + strconv.Itoa(i)
}

// EnsureOwnership creates or updates the DeliveryMembers and DeliveryLeases
// buckets, whose keys live ttl after their last write.
func EnsureOwnership(ctx context.Context, js jetstream.JetStream, o Options, ttl time.Duration) (members, leases jetstream.KeyValue, err error) {
	o = o.withDefaults()
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	members, err = ensureLeaseBucket(ctx, js, DeliveryMembers, "live delivery workers", o.Replicas, ttl)
	if err != nil {
		return nil, nil, err
	}
	leases, err = ensureLeaseBucket(ctx, js, DeliveryLeases, "delivery partition leases", o.Replicas, ttl)
	if err != nil {
		return nil, nil, err
	}
	return members, leases, nil
}

// ensureLeaseBucket returns the bucket, creating it or updating its TTL
// and replicas only when they differ (every worker ensures it at start).
func ensureLeaseBucket(ctx context.Context, js jetstream.JetStream, name, description string, replicas int, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, name)
	switch {
	case err == nil:
		st, err := kv.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("status of bucket %s: %w", name, err)
		}
		if st.TTL() == ttl && st.Config().Replicas == replicas {
			return kv, nil
		}
	case !errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("look up bucket %s: %w", name, err)
	}
	kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: description,
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure bucket %s: %w", name, err)
	}
	return kv, nil
}
