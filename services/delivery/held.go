package delivery

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// release forgets j once it has been delivered (or will not be).
func (p *partition) release(j *job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held[j.seq] == j {
		delete(p.held, j.seq)
	}
}

// keepAlive sends InProgress for every held delivery every AckWait/3 until
// ctx ends, so deliveries waiting in a lane or in flight are not redelivered.
func (p *partition) keepAlive(ctx context.Context) {
	every := p.ackWait / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.mu.Lock()
			jobs := make([]*job, 0, len(p.held))
			for _, j := range p.held {
				jobs = append(jobs, j)
			}
			p.mu.Unlock()
			var failed int
			var lastErr error
			for _, j := range jobs {
				if err := j.progress(now, every); err != nil {
					failed++
					lastErr = err
				}
			}
			if failed > 0 {
				p.log.WarnContext(ctx, "in-progress signals failed", "count", failed, "err", lastErr)
			}
		}
	}
}

// expireQueued puts off to the schedule, every maxWait/2, the deliveries
// that have waited in a lane for longer than maxWait, until ctx ends. A lane
// that cannot keep up (an endpoint that hangs, or is slow) would otherwise
// hold its queued deliveries un-acked in the stream for as long as the
// queue takes to drain, minutes for an endpoint that times out.
func (p *partition) expireQueued(ctx context.Context, maxWait time.Duration) {
	t := time.NewTicker(max(maxWait/2, 10*time.Millisecond))
	defer t.Stop()
	dctx := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, e := range p.lanes.expire(now.Add(-maxWait)) {
				due := p.states.deferSlot(e.key, now, p.deferDelay, p.concurrency)
				p.deferrer.submit(dctx, deferral{p: p, j: e.j, due: due, why: whyLaneWait})
			}
		}
	}
}

// stop stops starting deliveries and hands back (nakks without delay)
// those never started, so the partition's next worker gets them as soon as
// the pin moves rather than after the ack wait.
func (p *partition) stop() {
	n := 0
	for _, j := range p.lanes.stop() {
		p.handBack(j)
		n++
	}
	if n > 0 {
		p.log.Info("handed back queued deliveries", "count", n)
	}
}

// handBack nakks j without delay and forgets it.
func (p *partition) handBack(j *job) {
	if err := j.settle().Nak(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		p.log.Warn("hand back a queued delivery; it returns after the ack wait", "seq", j.seq, "err", err)
	}
	p.release(j)
}
