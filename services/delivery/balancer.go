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
	"strconv"
	"strings"
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
// A watch of the leases tells each worker at once when a lease it should
// hold is given up (deleted), so a partition moves as soon as its previous
// holder has settled it, not at the next renewal tick; a lease that lapses
// (its holder killed) leaves no such sign and is taken at a tick.
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
	// released carries a partition whose release has settled it and given
	// up its lease.
	released chan int
	// stopped is closed when run starts shutting down.
	stopped chan struct{}
	// seen is each member key's last write seen; a member judged gone
	// stays here (gone set) for a while, so that a replay of its last write
	// by a restarted watch does not bring it back.
	seen map[string]sighting
	// taken is each partition lease's state as the leases watch last
	// showed it: true while some worker holds it, false once deleted. A
	// partition missing from it has not been seen either way.
	taken map[int]bool

	mu   sync.Mutex
	held map[int]*holding
}

// sighting is a member key's last write seen: when (by this worker's
// clock) and its revision, and whether the member is judged gone (its key
// lapsed or deleted).
type sighting struct {
	at   time.Time
	rev  uint64
	gone bool
}

// goneKept is how long, in LeaseTTLs, a member judged gone is remembered:
// longer than its last write can stay in the bucket (MaxAge is one TTL).
const goneKept = 4

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
		seen: map[string]sighting{}, taken: map[int]bool{}, held: map[int]*holding{},
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
	lw := b.watchKV(ctx, b.leases, streams.DeliveryLeases)
	every := b.ttl / 5
	t := time.NewTicker(every)
	defer t.Stop()
	b.join(ctx)
	// initial: the first watch has not delivered its initial values yet;
	// replaying: the current watch (the first or a restarted one) has not.
	initial, replaying := true, true
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case e, ok := <-w.updates():
			if !ok {
				b.log.InfoContext(ctx, "members watch ended, restarting it")
				w, replaying = b.watch(ctx), true
				continue
			}
			if e == nil { // the initial values are in
				replaying = false
				if initial {
					initial = false
					b.reconcile(ctx, false)
					ready()
				}
				continue
			}
			b.observe(e, replaying)
			if !initial {
				b.reconcile(ctx, false)
			}
		case e, ok := <-lw.updates():
			if !ok {
				b.log.InfoContext(ctx, "leases watch ended, restarting it")
				lw = b.watchKV(ctx, b.leases, streams.DeliveryLeases)
				continue
			}
			if e == nil {
				continue
			}
			// A lease given up: take it now if it is this worker's to hold.
			if b.observeLease(e) && !initial {
				b.reconcile(ctx, true)
			}
		case <-b.released:
			b.reconcile(ctx, false)
		case now := <-t.C:
			b.join(ctx)
			b.renew(ctx, now)
			if !initial {
				b.reconcile(ctx, false)
			}
		}
	}
	w.stop()
	lw.stop()
	return b.leave()
}

// observeLease notes a change of a partition lease, and reports whether it
// was given up (deleted or purged).
func (b *balancer) observeLease(e jetstream.KeyValueEntry) bool {
	i, ok := leasePartition(e.Key(), b.n)
	if !ok {
		return false
	}
	free := e.Operation() != jetstream.KeyValuePut
	b.taken[i] = !free
	return free
}

// leasePartition returns the partition whose lease key is key.
func leasePartition(key string, n int) (int, bool) {
	s, ok := strings.CutPrefix(key, "p")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= n || streams.LeaseKey(i) != key {
		return 0, false
	}
	return i, true
}

// watcher is a members watch that may be absent (while NATS is
// unreachable), and the cancel of the context it lives in.
type watcher struct {
	kw     jetstream.KeyWatcher
	cancel context.CancelFunc
}

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
		w.cancel()
	}
}

// watch starts a watch of the members, retrying until it starts or ctx ends.
// The watch lives as long as the context it was started with (nats.go
// unsubscribes when it ends): that is ctx, not the attempt's context, which
// ends as soon as the attempt returns; the attempt's timeout bounds only the
// start. (A watch started in the attempt's context ended at once, and was
// restarted every few milliseconds, each restart replaying every member
// key as a fresh sighting: a killed worker stayed live until its key
// expired in the bucket and for a TTL more, about twice the TTL.)
func (b *balancer) watch(ctx context.Context) watcher {
	return b.watchKV(ctx, b.members, streams.DeliveryMembers)
}

// watchKV starts a watch of every key of kv (named name), as watch does.
func (b *balancer) watchKV(ctx context.Context, kv jetstream.KeyValue, name string) watcher {
	var w watcher
	_ = streams.Retry(ctx, b.log, "watch "+name, func(attempt context.Context) error {
		wctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(attempt, cancel)
		kw, err := kv.WatchAll(wctx)
		if !stop() { // the attempt timed out first: the watch, if any, is ended
			cancel()
			if err == nil {
				_ = kw.Stop()
				err = fmt.Errorf("watch started too late: %w", context.Cause(attempt))
			}
			return err
		}
		if err != nil {
			cancel()
			return err
		}
		w = watcher{kw: kw, cancel: cancel}
		return nil
	})
	return w
}

// join writes this worker's member key.
func (b *balancer) join(ctx context.Context) {
	if _, err := b.members.Put(ctx, b.id, memberValue()); err != nil {
		b.log.WarnContext(ctx, "cannot renew membership", "err", err)
	}
}

// observe notes a change of a member key; replayed is true for the values
// a watch starts with (the last write of each key still in the bucket),
// which are dated by the server's timestamp: a restarted watch replays the
// last write of a member that died, nearly ttl old, and it must not count
// as a fresh sign of life. A write no newer than one already seen (or than
// the last write of a member judged gone) changes nothing.
func (b *balancer) observe(e jetstream.KeyValueEntry, replayed bool) {
	prev, known := b.seen[e.Key()]
	if known && e.Revision() <= prev.rev {
		return // a write already seen, delivered again (the watch restarted)
	}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		at := time.Now()
		if replayed && e.Created().Before(at) {
			// It may be nearly ttl old already (the server's clock).
			at = e.Created()
		}
		b.seen[e.Key()] = sighting{at: at, rev: e.Revision()}
	default:
		b.seen[e.Key()] = sighting{at: time.Now(), rev: e.Revision(), gone: true}
	}
}

// live returns the members whose keys were written within ttl, this
// worker included.
func (b *balancer) live(now time.Time) []string {
	out := []string{b.id}
	for id, sg := range b.seen {
		switch age := now.Sub(sg.at); {
		case sg.gone && age >= goneKept*b.ttl:
			delete(b.seen, id)
		case sg.gone:
		case age >= b.ttl:
			// Lapsed: remembered as gone from now on, at its last revision.
			b.seen[id] = sighting{at: now, rev: sg.rev, gone: true}
		case id != b.id:
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// reconcile releases the partitions this worker should not hold and tries
// to acquire the free ones it should, all at once. With onlyFree, it tries
// only those whose lease the leases watch last showed free or has not
// shown (the others' holders delete them when they have settled them, which
// the watch reports); without, every one (a lease that lapsed shows
// nothing).
func (b *balancer) reconcile(ctx context.Context, onlyFree bool) {
	if ctx.Err() != nil {
		return // leaving
	}
	want := assigned(b.live(time.Now()), b.n, b.id)
	var take []int
	b.mu.Lock()
	for i, h := range b.held {
		if !want[i] && !h.releasing {
			b.log.InfoContext(ctx, "releasing partition to rebalance", "partition", i)
			b.release(ctx, i, h)
		}
	}
	for i := range b.n {
		if _, ok := b.held[i]; ok || !want[i] || (onlyFree && b.taken[i]) {
			continue
		}
		take = append(take, i)
	}
	b.mu.Unlock()
	// One at a time, each acquisition's round trips (create, consumer
	// info, unpin) added up to seconds over the partitions of a rebalance.
	var wg sync.WaitGroup
	for _, i := range take {
		wg.Go(func() { b.acquire(ctx, i) })
	}
	wg.Wait()
}

// acquire takes partition i's lease if it is free, and starts pulling it.
// Only run's loop calls it (through reconcile), so no two acquisitions of
// one partition overlap.
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
	b.mu.Lock()
	b.held[i] = &holding{p: p, rev: rev, renewed: time.Now()}
	b.mu.Unlock()
	b.log.InfoContext(ctx, "partition acquired", "partition", i)
}

// release settles partition i's tenure in the background, then gives up
// its pin and lease there, and tells run's loop. Releases run side by side:
// given up in the loop, one after another between its other work, the
// last partitions of a rebalance waited seconds for their turn, their
// deliveries with them. Called with b.mu held.
func (b *balancer) release(ctx context.Context, i int, h *holding) {
	h.releasing = true
	go func() {
		h.p.stopPulling()
		h.p.settle(b.grace)
		b.mu.Lock()
		mine := b.held[i] == h
		if mine {
			delete(b.held, i) // no renewal from now on: h is this goroutine's
		}
		b.mu.Unlock()
		if !mine {
			return // leave took it, and gives up the lease
		}
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		b.giveUp(gctx, i, h)
		b.log.InfoContext(ctx, "partition released", "partition", i)
		select {
		case b.released <- i:
		case <-b.stopped:
		}
	}()
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
			b.release(ctx, i, h)
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
