package streams

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestEnsureDeliveriesUpdatesConsumers starts from partition consumers made
// with the old settings (AckWait 60 s, pinned TTL 30 s): ensuring them again
// updates every one to the new AckWait and DeliveryPinnedTTL.
func TestEnsureDeliveriesUpdatesConsumers(t *testing.T) {
	js := testenv.StartNATS(t).JetStream(t)
	ctx := context.Background()
	o := Options{Partitions: 3}
	s, err := EnsureDeliveries(ctx, js, o, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := range o.Partitions {
		c, err := s.Consumer(ctx, PartitionConsumer(i))
		if err != nil {
			t.Fatal(err)
		}
		cfg := c.CachedInfo().Config
		cfg.PinnedTTL = 30 * time.Second
		if _, err := s.UpdateConsumer(ctx, cfg); err != nil {
			t.Fatalf("set the old pinned TTL: %v", err)
		}
	}
	if _, err := EnsureDeliveries(ctx, js, o, 0); err != nil {
		t.Fatal(err)
	}
	for i := range o.Partitions {
		c, err := s.Consumer(ctx, PartitionConsumer(i))
		if err != nil {
			t.Fatal(err)
		}
		cfg := c.CachedInfo().Config
		if cfg.AckWait != DefaultDeliveryAckWait || cfg.PinnedTTL != DeliveryPinnedTTL {
			t.Errorf("consumer %s: AckWait %v, pinned TTL %v; want %v and %v", PartitionConsumer(i), cfg.AckWait, cfg.PinnedTTL, DefaultDeliveryAckWait, DeliveryPinnedTTL)
		}
	}
}

// TestOwnershipLeasesLapseAndCompareAndSet checks what the delivery
// balancer relies on: a lease is created once, renewed only at its
// revision, and gone (free to create again) once it has not been written
// for the bucket's TTL; and a changed TTL updates the buckets.
func TestOwnershipLeasesLapseAndCompareAndSet(t *testing.T) {
	js := testenv.StartNATS(t).JetStream(t)
	ctx := context.Background()
	const ttl = time.Second
	_, leases, err := EnsureOwnership(ctx, js, Options{}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := leases.Create(ctx, LeaseKey(3), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leases.Create(ctx, LeaseKey(3), []byte("b")); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("second Create = %v, want ErrKeyExists", err)
	}
	if _, err := leases.Update(ctx, LeaseKey(3), []byte("b"), rev+100); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Fatalf("Update at a wrong revision = %v, want ErrKeyRevisionMismatch", err)
	}
	if rev, err = leases.Update(ctx, LeaseKey(3), []byte("a"), rev); err != nil {
		t.Fatalf("renew: %v", err)
	}
	testenv.WaitFor(t, 5*ttl, func() error {
		_, err := leases.Create(ctx, LeaseKey(3), []byte("b"))
		return err
	})
	if _, err := leases.Update(ctx, LeaseKey(3), []byte("a"), rev); !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		t.Errorf("renewal of a lapsed and retaken lease = %v, want ErrKeyRevisionMismatch", err)
	}

	members, _, err := EnsureOwnership(ctx, js, Options{}, 2*ttl)
	if err != nil {
		t.Fatal(err)
	}
	st, err := members.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 2*ttl {
		t.Errorf("members bucket TTL %v after ensuring it with %v", st.TTL(), 2*ttl)
	}
}
