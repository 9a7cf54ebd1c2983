package delivery

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

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
		wg.Go(func() { errs <- idem.markDone(ctx, deliveries[k], attemptOf(k)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("markDone: %v", err)
		}
	}
	for k, d := range deliveries {
		if got, want := rdb.Get(ctx, deliveryDoneKey(d)).Val(), completionOf(attemptOf(k)).String(); got != want {
			t.Fatalf("record of %s = %q, want %q", deliveryDoneKey(d), got, want)
		}
		if got, want := parseCompletion(rdb.Get(ctx, deliveryDoneKey(d)).Val()), completionOf(attemptOf(k)); got != want {
			t.Fatalf("record of %s reads back as %+v, want %+v", deliveryDoneKey(d), got, want)
		}
		if ttl := rdb.PTTL(ctx, deliveryDoneKey(d)).Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("record of %s lives %v, want up to an hour", deliveryDoneKey(d), ttl)
		}
		if d.GetResendId() != "" {
			if _, done, err := idem.done(ctx, &eventv1.Delivery{MessageId: d.GetMessageId(), EndpointId: d.GetEndpointId()}); err != nil || !done {
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
	if err := idem.markDone(short, &eventv1.Delivery{MessageId: "msg_down", EndpointId: "ep_0"}, attemptOf(0)); err == nil {
		t.Fatal("markDone with Redis stopped succeeded, want an error")
	}
	if _, _, err := idem.done(short, &eventv1.Delivery{MessageId: "msg_0", EndpointId: "ep_0"}); err == nil {
		t.Fatal("done with Redis stopped succeeded, want an error")
	}
}

// TestCompletionChecksShareRoundTrips checks many deliveries at once, half
// of them completed, and checks every answer and that they shared round
// trips.
func TestCompletionChecksShareRoundTrips(t *testing.T) {
	rdb := testenv.StartRedis(t).Client(t)
	ctx := context.Background()
	idem := newIdempotency(rdb, time.Hour)
	const n = 400
	deliveries := make([]*eventv1.Delivery, n)
	for k := range n {
		deliveries[k] = &eventv1.Delivery{MessageId: fmt.Sprintf("msg_%d", k), EndpointId: "ep_1"}
		if k%2 == 0 {
			if err := idem.markDone(ctx, deliveries[k], attemptOf(k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := idem.batch.roundTrips.Load()
	type answer struct {
		c    completion
		done bool
		err  error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			c, done, err := idem.done(ctx, deliveries[k])
			answers[k] = answer{c, done, err}
		})
	}
	wg.Wait()
	for k, a := range answers {
		switch {
		case a.err != nil:
			t.Fatalf("done(%d): %v", k, a.err)
		case a.done != (k%2 == 0):
			t.Fatalf("done(%d) = %v, want %v", k, a.done, k%2 == 0)
		case a.done && a.c != completionOf(attemptOf(k)):
			t.Fatalf("done(%d) = %+v, want %+v", k, a.c, completionOf(attemptOf(k)))
		}
	}
	if got := idem.batch.roundTrips.Load() - before; got >= n {
		t.Errorf("%d checks took %d round trips, want them shared", n, got)
	} else {
		t.Logf("%d checks in %d round trips", n, got)
	}
}

// attemptOf is a successful attempt numbered after k.
func attemptOf(k int) *eventv1.Attempt {
	return &eventv1.Attempt{
		Id:         fmt.Sprintf("atmpt_%d", k),
		Attempt:    uint32(k%8 + 1),
		StartedAt:  timestamppb.New(time.UnixMicro(1_780_000_000_000_000 + int64(k))),
		DurationUs: int64(1000 + k),
		StatusCode: 200,
	}
}
