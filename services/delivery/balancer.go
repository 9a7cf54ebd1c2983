package delivery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// balancer spreads the partitions over the live workers and runs this
// worker's share. Membership is a key per worker in DeliveryMembers, written
// every ttl/5 and considered gone ttl after its last write (or at once when
// deleted); the partitions are leases in DeliveryLeases, taken with a KV
// create, renewed with an update on the revision held and deleted with it.
// Every worker computes the same assignment from the sorted live members
// (assigned), gives up the leases it should not hold and takes the free ones
// it should: nothing but KV compare-and-set decides who holds what, and the
// pinned priority group of each partition consumer stops two workers from
// pulling one partition even while their views of the members differ.
type balancer struct {
	id      string
	n       int
	ttl     time.Duration
	grace   time.Duration
	members jetstream.KeyValue
	leases  jetstream.KeyValue
	log     *slog.Logger
	// newPartition makes a tenure of partition i.
	newPartition func(i int) *partition
	// released carries a partition whose release has settled it.
	released chan int
	// stopped is closed when run starts shutting down.
	stopped chan struct{}
	// seen is each member key's last write seen.
	seen map[string]sighting

	mu   sync.Mutex
	held map[int]*holding
}

// sighting is a member key's last write seen: when (by this worker's
// clock) and its revision.
type sighting struct {
	at  time.Time
	rev uint64
}

// holding is a lease this worker holds, and the tenure it runs.
type holding struct {
	p       *partition
	rev     uint64
	renewed time.Time
	// releasing: the tenure is being settled; the lease is kept (and
	// renewed) until it is, so no other worker pulls the partition meanwhile.
	releasing bool
	// lost: the lease is not this worker's any more (taken over after it
	// lapsed, or not renewed in time); it is not deleted at release.
	lost bool
}

func newBalancer(n int, cfg Config, members, leases jetstream.KeyValue, log *slog.Logger, newPartition func(int) *partition) *balancer {
	id := newMemberID()
	return &balancer{
		id: id, n: n, ttl: cfg.LeaseTTL, grace: cfg.ShutdownGrace,
		members: members, leases: leases, log: log.With("member", id), newPartition: newPartition,
		released: make(chan int), stopped: make(chan struct{}),
		seen: map[string]sighting{}, held: map[int]*holding{},
	}
}

// newMemberID returns a member id unique to this run of this worker.
func newMemberID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// memberValue describes this worker in its member key, for operators.
func memberValue() []byte {
	host, _ := os.Hostname()
	return fmt.Appendf(nil, "%s pid %d", host, os.Getpid())
}

// run joins the members, then keeps this worker's share of the partitions
// running until ctx ends; ready is called once the first share is taken.
// At the end it leaves: it deletes its member key, stops pulling every
// partition (handing back what has not started), gives up their pins and
// leases so other workers take them over now, and returns the tenures for
// the caller to settle.
func (b *balancer) run(ctx context.Context, ready func()) []*partition {
	w := b.watch(ctx)
	every := b.ttl / 5
	t := time.NewTicker(every)
	defer t.Stop()
	b.join(ctx)
	initial := true
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case e, ok := <-w.updates():
			if !ok {
				w = b.watch(ctx)
				continue
			}
			if e == nil { // the initial values are in
				if initial {
					initial = false
					b.reconcile(ctx)
					ready()
				}
				continue
			}
			b.observe(e, initial)
			if !initial {
				b.reconcile(ctx)
			}
		case i := <-b.released:
			b.finishRelease(ctx, i)
			b.reconcile(ctx)
		case now := <-t.C:
			b.join(ctx)
			b.renew(ctx, now)
			if !initial {
				b.reconcile(ctx)
			}
		}
	}
	w.stop()
	return b.leave()
}

// watcher is a members watch that may be absent (while NATS is unreachable).
type watcher struct{ kw jetstream.KeyWatcher }

// updates is the watch's channel, or nil (never ready) without one.
func (w watcher) updates() <-chan jetstream.KeyValueEntry {
	if w.kw == nil {
		return nil
	}
	return w.kw.Updates()
}

func (w watcher) stop() {
	if w.kw != nil {
		_ = w.kw.Stop()
	}
}

// watch starts a watch of the members, retrying until it starts or ctx ends.
//
// The watch lives as long as ctx: a KV watch stops when the context it was
// started with ends, so it must not be started with the retry's per-try
// context (cancelled as soon as the try returns), which ended every watch
// at once and made the run loop start a new one — a consumer created and
// deleted on the server, over and over, whatever the traffic.
func (b *balancer) watch(ctx context.Context) watcher {
	var kw jetstream.KeyWatcher
	_ = streams.Retry(ctx, b.log, "watch "+streams.DeliveryMembers, func(context.Context) error {
		var err error
		kw, err = b.members.WatchAll(ctx)
		return err
	})
	return watcher{kw: kw}
}

// join writes this worker's member key.
func (b *balancer) join(ctx context.Context) {
	if _, err := b.members.Put(ctx, b.id, memberValue()); err != nil {
		b.log.WarnContext(ctx, "cannot renew membership", "err", err)
	}
}

// observe notes a change of a member key; initial is true for the values
// the watch starts with.
func (b *balancer) observe(e jetstream.KeyValueEntry, initial bool) {
	switch e.Operation() {
	case jetstream.KeyValuePut:
		at := time.Now()
		if initial && e.Created().Before(at) {
			// It may be nearly ttl old already (the server's clock).
			at = e.Created()
		}
		if prev, ok := b.seen[e.Key()]; ok && e.Revision() <= prev.rev {
			return // a write already seen, delivered again (the watch restarted)
		}
		b.seen[e.Key()] = sighting{at: at, rev: e.Revision()}
	default:
		delete(b.seen, e.Key())
	}
}

// live returns the members whose keys were written within ttl, this
// worker included.
func (b *balancer) live(now time.Time) []string {
	out := []string{b.id}
	for id, sg := range b.seen {
		if now.Sub(sg.at) < b.ttl && id != b.id {
			out = append(out, id)
		} else if now.Sub(sg.at) >= b.ttl {
			delete(b.seen, id)
		}
	}
	slices.Sort(out)
	return out
}

// reconcile releases the partitions this worker should not hold and tries
// to acquire the free ones it should.
func (b *balancer) reconcile(ctx context.Context) {
	if ctx.Err() != nil {
		return // leaving
	}
	want := assigned(b.live(time.Now()), b.n, b.id)
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, h := range b.held {
		if !want[i] && !h.releasing {
			b.log.InfoContext(ctx, "releasing partition to rebalance", "partition", i)
			b.release(i, h)
		}
	}
	for i := range b.n {
		if _, ok := b.held[i]; ok || !want[i] {
			continue
		}
		b.acquire(ctx, i)
	}
}

// acquire takes partition i's lease if it is free, and starts pulling it.
// Called with b.mu held.
func (b *balancer) acquire(ctx context.Context, i int) {
	rev, err := b.leases.Create(ctx, streams.LeaseKey(i), []byte(b.id))
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return // still held: its holder releases it, or it lapses
	case err != nil:
		b.log.WarnContext(ctx, "cannot take a partition lease", "partition", i, "err", err)
		return
	}
	p := b.newPartition(i)
	if err := p.takeOverPin(ctx); err != nil {
		b.log.WarnContext(ctx, "cannot clear the previous holder's pin; the partition comes after the pinned TTL", "partition", i, "err", err)
	}
	p.start(ctx)
	b.held[i] = &holding{p: p, rev: rev, renewed: time.Now()}
	b.log.InfoContext(ctx, "partition acquired", "partition", i)
}

// release settles partition i's tenure in the background, then hands it to
// finishRelease. Called with b.mu held.
func (b *balancer) release(i int, h *holding) {
	h.releasing = true
	go func() {
		h.p.stopPulling()
		h.p.settle(b.grace)
		select {
		case b.released <- i:
		case <-b.stopped: // leave gives up the lease
		}
	}()
}

// finishRelease gives up a settled partition's pin and lease.
func (b *balancer) finishRelease(ctx context.Context, i int) {
	b.mu.Lock()
	h := b.held[i]
	delete(b.held, i)
	b.mu.Unlock()
	if h == nil {
		return
	}
	b.giveUp(ctx, i, h)
	b.log.InfoContext(ctx, "partition released", "partition", i)
}

// giveUp unpins partition i, if this worker holds the pin, and deletes its
// lease, unless lost.
func (b *balancer) giveUp(ctx context.Context, i int, h *holding) {
	if err := h.p.releasePin(ctx); err != nil {
		b.log.WarnContext(ctx, "cannot release a partition pin; it lapses after the pinned TTL", "partition", i, "err", err)
	}
	if h.lost {
		return
	}
	if err := b.leases.Delete(ctx, streams.LeaseKey(i), jetstream.LastRevision(h.rev)); err != nil {
		b.log.WarnContext(ctx, "cannot delete a partition lease; it lapses after its TTL", "partition", i, "err", err)
	}
}

// renew renews every lease held. One another worker has taken (after it
// lapsed), or one not renewed for 3/5 of its TTL (before it can lapse), is
// lost: the tenure stops pulling and is settled.
func (b *balancer) renew(ctx context.Context, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, h := range b.held {
		if h.lost {
			continue
		}
		rev, err := b.leases.Update(ctx, streams.LeaseKey(i), []byte(b.id), h.rev)
		switch {
		case err == nil:
			h.rev, h.renewed = rev, now
			continue
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		case now.Sub(h.renewed) < b.ttl*3/5:
			b.log.WarnContext(ctx, "cannot renew a partition lease, retrying", "partition", i, "err", err)
			continue
		}
		b.log.WarnContext(ctx, "partition lease lost, stopping its pull", "partition", i, "err", err)
		h.lost = true
		if !h.releasing {
			b.release(i, h)
		}
	}
}

// leave deletes the member key, stops pulling every partition and gives up
// their pins and leases, and returns every tenure, settled or not.
func (b *balancer) leave() []*partition {
	close(b.stopped)
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := b.members.Delete(ctx, b.id); err != nil {
		b.log.Warn("cannot delete the member key; the others rebalance after its TTL", "err", err)
	}
	b.mu.Lock()
	held := b.held
	b.held = map[int]*holding{}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, h := range held {
		wg.Go(h.p.stopPulling)
	}
	wg.Wait()
	parts := make([]*partition, 0, len(held))
	for i, h := range held {
		wg.Go(func() { b.giveUp(ctx, i, h) })
		parts = append(parts, h.p)
	}
	wg.Wait()
	return parts
}

// partitions returns the partitions this worker holds and pulls, in order.
func (b *balancer) partitions() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int
	for i, h := range b.held {
		if !h.releasing {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// tenure returns the tenure of partition i, or nil.
func (b *balancer) tenure(i int) *partition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.held[i]; h != nil {
		return h.p
	}
	return nil
}
