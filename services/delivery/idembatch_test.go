package delivery

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// TestCompletionRecordsShareRoundTrips writes many completion records at
// once through the batcher and checks that every one is in Redis (with its
// attempt id and lifetime, and the endpoint's failure run ended), that they
// took fewer round trips than records, and that with Redis down every caller
// gets an error rather than a silent success.
func TestCompletionRecordsShareRoundTrips(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := r.Client(t)
	ctx := context.Background()
	idem := newIdempotency(rdb, time.Hour)

	const n = 400
	for k := range n {
		if err := rdb.Set(ctx, failingKey(fmt.Sprintf("ep_%d", k%10)), "1", time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	deliveries := make([]*eventv1.Delivery, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for k := range n {
		deliveries[k] = &eventv1.Delivery{MessageId: fmt.Sprintf("msg_%d", k), EndpointId: fmt.Sprintf("ep_%d", k%10)}
		if k%50 == 0 {
			deliveries[k].ResendId = fmt.Sprintf("rs_%d", k)
		}
		wg.Go(func() { errs <- idem.markDone(ctx, deliveries[k], fmt.Sprintf("atmpt_%d", k)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("markDone: %v", err)
		}
	}
	for k, d := range deliveries {
		if got := rdb.Get(ctx, deliveryDoneKey(d)).Val(); got != fmt.Sprintf("atmpt_%d", k) {
			t.Fatalf("record of %s = %q, want atmpt_%d", deliveryDoneKey(d), got, k)
		}
		if ttl := rdb.PTTL(ctx, deliveryDoneKey(d)).Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("record of %s lives %v, want up to an hour", deliveryDoneKey(d), ttl)
		}
		if d.GetResendId() != "" {
			if done, err := idem.done(ctx, &eventv1.Delivery{MessageId: d.GetMessageId(), EndpointId: d.GetEndpointId()}); err != nil || !done {
				t.Fatalf("resend %s not recorded as the message's delivery: %v %v", d.GetResendId(), done, err)
			}
		}
	}
	for k := range 10 {
		if n := rdb.Exists(ctx, failingKey(fmt.Sprintf("ep_%d", k))).Val(); n != 0 {
			t.Errorf("failure run of ep_%d not ended", k)
		}
	}
	if got := idem.batch.roundTrips.Load(); got >= n {
		t.Errorf("%d records took %d round trips, want them shared", n, got)
	} else {
		t.Logf("%d records in %d round trips", n, got)
	}

	r.Stop()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := idem.markDone(short, &eventv1.Delivery{MessageId: "msg_down", EndpointId: "ep_0"}, "atmpt_down"); err == nil {
		t.Fatal("markDone with Redis stopped succeeded, want an error")
	}
}
