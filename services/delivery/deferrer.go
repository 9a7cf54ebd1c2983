package delivery

import (
	"context"
	"sync"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/natsx"
)

const (
	// deferQueue bounds the deliveries waiting to be put off.
	deferQueue = 4096
	// deferWorkers is how many deliveries are put off at once.
	deferWorkers = 4
)

// deferral is a delivery a partition puts off without giving it to a lane.
type deferral struct {
	p   *partition
	j   *job
	due time.Time
	why string
}

// deferrer puts deliveries off to the schedule for the partitions' pull
// loops, which must not wait for Redis. When it is saturated (Redis slow or
// down) a delivery is nakked instead, so JetStream brings it back later.
type deferrer struct {
	dl *deliverer
	ch chan deferral
	wg sync.WaitGroup
}

func newDeferrer(dl *deliverer) *deferrer {
	return &deferrer{dl: dl, ch: make(chan deferral, deferQueue)}
}

// start runs the workers until close. ctx is not cancelled at shutdown:
// deliveries already handed over are put off before close returns.
func (df *deferrer) start(ctx context.Context) {
	for range deferWorkers {
		df.wg.Add(1)
		go func() {
			defer df.wg.Done()
			for x := range df.ch {
				d := x.j.delivery
				log := df.dl.log.With("tenant_id", d.GetTenantId(), "endpoint_id", d.GetEndpointId(),
					"message_id", d.GetMessageId(), "attempt", d.GetAttempt())
				df.dl.putOff(natsx.Extract(ctx, x.j.current().Headers()), log, x.j, x.due, x.why, false)
				x.p.release(x.j)
			}
		}()
	}
}

// submit hands x over without waiting.
func (df *deferrer) submit(ctx context.Context, x deferral) {
	select {
	case df.ch <- x:
	default:
		df.dl.nak(ctx, df.dl.log, x.j, df.dl.cfg.RetryDelay)
		x.p.release(x.j)
	}
}

// close stops taking deliveries and waits until those handed over are put
// off. No submit may follow.
func (df *deferrer) close() {
	close(df.ch)
	df.wg.Wait()
}
