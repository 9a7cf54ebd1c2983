package delivery

import (
	"context"
	"time"
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

// stop stops starting deliveries; those never started are forgotten and
// stay un-acked, so JetStream redelivers them to the next worker after the
// ack wait.
func (p *partition) stop() {
	for _, j := range p.lanes.stop() {
		p.release(j)
	}
}
