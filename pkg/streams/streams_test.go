package streams

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

func TestPartitionIsStableAndSpread(t *testing.T) {
	const p = 64
	counts := make([]int, p)
	for i := 0; i < 64000; i++ {
		id := "ep_" + strconv.Itoa(i)
		n := Partition(id, p)
		if n != Partition(id, p) {
			t.Fatalf("Partition(%q) is not stable", id)
		}
		counts[n]++
	}
	for i, c := range counts {
		if c < 500 || c > 1500 {
			t.Errorf("partition %d got %d of 64000 ids, want about 1000", i, c)
		}
	}
	if got, want := DeliverySubject("ep_1", p), "deliveries."+strconv.Itoa(Partition("ep_1", p))+".ep_1"; got != want {
		t.Errorf("DeliverySubject = %q, want %q", got, want)
	}
}

func TestEnsureIsIdempotentAndGuardsPartitions(t *testing.T) {
	js := testenv.StartNATS(t).JetStream(t)
	ctx := context.Background()
	o := Options{Partitions: 4}
	for i := 0; i < 2; i++ {
		if err := EnsureAll(ctx, js, o, time.Minute); err != nil {
			t.Fatalf("EnsureAll #%d: %v", i+1, err)
		}
	}
	p, err := PartitionsOf(ctx, js)
	if err != nil || p != 4 {
		t.Fatalf("PartitionsOf = %d, %v, want 4", p, err)
	}
	if _, err := EnsureDeliveries(ctx, js, Options{Partitions: 8}, time.Minute); err == nil {
		t.Fatal("EnsureDeliveries with another partition count succeeded, want an error")
	}
	for i := 0; i < 4; i++ {
		if _, err := js.Consumer(ctx, Deliveries, PartitionConsumer(i)); err != nil {
			t.Errorf("consumer %s: %v", PartitionConsumer(i), err)
		}
	}
}
