package harness

import (
	"context"
	"fmt"
	"time"
)

// barTrickle is the trickle scenario's target (issue 13).
const barTrickle = "cpu_us_per_delivery ≤ 1000; 0 lost"

// trickle: 200 events/s round-robin over 100 tenants with one endpoint
// each (one delivery per event), 60 s: the CPU a delivery costs when
// traffic is light and nothing is shared between deliveries.
func (h *Harness) trickle(ctx context.Context, res *Result) error {
	res.Bar = barTrickle
	sys, err := h.startSystem(ctx, "trickle", h.opts.Shape)
	if err != nil {
		return err
	}
	defer h.finish(sys, res)
	f := h.newFleet("tr", 100, 1, nil)
	if err := h.create(ctx, sys, f, 16, res); err != nil {
		return err
	}
	if err := h.runTraffic(ctx, traffic{name: "trickle", sys: sys, tenants: f.tenants, subscribers: f.subscribers,
		rate: 200, duration: h.pick(60*time.Second, 20*time.Second, 2*time.Second), concurrency: 16, settle: true}, res); err != nil {
		return err
	}
	met := res.CPUPerDeliveryUs > 0 && res.CPUPerDeliveryUs <= 1000 && res.Lost == 0
	res.judge(met, fmt.Sprintf("%.0f µs CPU per delivery at %.0f deliveries/s", res.CPUPerDeliveryUs, res.DeliveriesPerS))
	if met {
		res.Reason = ""
	}
	return nil
}
