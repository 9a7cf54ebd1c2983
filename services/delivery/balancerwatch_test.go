package delivery

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// TestBalancerKeepsOneMembersWatch: a running worker watches the members
// bucket with one watch for as long as it runs. A watch started with a
// per-try context ended as soon as it was started, and the worker started
// another at once: a consumer created (and deleted) on the server about 1,400
// times a second (4,309 in this test's 3 s before the fix), idle or not, which cost more CPU than the
// deliveries at low rates (issue 13).
func TestBalancerKeepsOneMembersWatch(t *testing.T) {
	e := newEnv(t)
	spy, err := nats.Connect(e.nats.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(spy.Close)
	var creates atomic.Int64
	sub, err := spy.Subscribe("$JS.API.CONSUMER.CREATE.KV_"+streams.DeliveryMembers+".>", func(*nats.Msg) { creates.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	e.startWorker(t, testConfig(), workerOptions{})
	time.Sleep(3 * time.Second) // a window of a running, idle worker
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = sub.Unsubscribe()
	if got := creates.Load(); got != 1 {
		t.Errorf("the worker created %d consumers on %s in its first 3 s, want 1 (one watch for its whole run)", got, streams.DeliveryMembers)
	}
}
