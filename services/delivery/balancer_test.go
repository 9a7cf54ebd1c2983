package delivery

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// replay feeds a fresh watch's initial values of the members bucket to b, as
// a restarted watch does in run; replayed as observe's.
func replay(t *testing.T, b *balancer, kv jetstream.KeyValue, replayed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	w, err := kv.WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return
			}
			b.observe(e, replayed)
		case <-ctx.Done():
			t.Fatal("the watch did not deliver its initial values")
		}
	}
}

// TestMemberLapsedStaysGoneWhenItsLastWriteIsReplayed writes a member key
// once (a worker that then dies) into a real members bucket with a long
// MaxAge, so that its last write is still there: once the member has lapsed
// (ttl after its last write, by this worker's view), a restarted watch
// replaying that write does not bring it back, while a new write does.
func TestMemberLapsedStaysGoneWhenItsLastWriteIsReplayed(t *testing.T) {
	const ttl = time.Second
	js := testenv.StartNATS(t).JetStream(t)
	ctx := context.Background()
	// The bucket keeps keys for a minute: the replayed write is certainly
	// still stored, as it can be with the real MaxAge of one TTL when the
	// server's expiry runs late.
	members, _, err := streams.EnsureOwnership(ctx, js, streams.Options{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b := newBalancer(4, Config{LeaseTTL: ttl, ShutdownGrace: time.Second}, members, nil, slog.New(slog.DiscardHandler), nil)
	if _, err := members.Put(ctx, "dead", []byte("x")); err != nil {
		t.Fatal(err)
	}
	replay(t, b, members, true)
	if got := b.live(time.Now()); !slices.Contains(got, "dead") {
		t.Fatalf("live members %v right after the write lack it", got)
	}
	lapsed := time.Now().Add(ttl)
	if got := b.live(lapsed); slices.Contains(got, "dead") {
		t.Fatalf("live members %v a TTL after the last write still hold it", got)
	}
	// The watch restarts: the last write is replayed, a TTL old. It is
	// dated by the server's timestamp, and its revision is the one judged
	// gone: either keeps it out (replayed false checks the revision alone).
	time.Sleep(ttl)
	for _, replayed := range []bool{false, true} {
		replay(t, b, members, replayed)
		if got := b.live(time.Now()); slices.Contains(got, "dead") {
			t.Errorf("live members %v after a replay (dated by the server: %v) hold the lapsed member again", got, replayed)
		}
	}
	// A new write (the same member alive after all) counts.
	if _, err := members.Put(ctx, "dead", []byte("x")); err != nil {
		t.Fatal(err)
	}
	replay(t, b, members, false)
	if got := b.live(time.Now()); !slices.Contains(got, "dead") {
		t.Errorf("live members %v after a new write lack it", got)
	}
}

// TestMembersWatchOutlivesItsStart starts the balancer's members watch and
// checks that it still delivers writes made after its start (it once lived
// only as long as the attempt that started it, and was restarted every few
// milliseconds).
func TestMembersWatchOutlivesItsStart(t *testing.T) {
	js := testenv.StartNATS(t).JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	members, _, err := streams.EnsureOwnership(ctx, js, streams.Options{}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b := newBalancer(4, Config{LeaseTTL: time.Second, ShutdownGrace: time.Second}, members, nil, slog.New(slog.DiscardHandler), nil)
	w := b.watch(ctx)
	defer w.stop()
	next := func() (jetstream.KeyValueEntry, bool) {
		t.Helper()
		select {
		case e, ok := <-w.updates():
			return e, ok
		case <-time.After(waitTimeout):
			t.Fatal("the watch delivered nothing")
			return nil, false
		}
	}
	if e, ok := next(); !ok || e != nil {
		t.Fatalf("first from the watch: %v (open %v), want the end of the initial values", e, ok)
	}
	time.Sleep(500 * time.Millisecond) // well after the start's attempt has ended
	if _, err := members.Put(ctx, "later", []byte("x")); err != nil {
		t.Fatal(err)
	}
	e, ok := next()
	if !ok {
		t.Fatal("the watch ended after its start")
	}
	if e.Key() != "later" {
		t.Errorf("watch delivered key %q, want later", e.Key())
	}
}
