package fanout

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// BenchmarkFanOut measures end-to-end fan-out throughput against a real
// nats-server: b.N events are stored first, then one replica fans them out.
func BenchmarkFanOut(b *testing.B) {
	for _, endpoints := range []int{1, 10, 10_000} {
		b.Run(fmt.Sprintf("endpoints=%d", endpoints), func(b *testing.B) {
			h := newHarness(b, false)
			tenant, _ := addEndpoints(h, endpoints)
			cfg := testConfig()
			cfg.Concurrency = DefaultConcurrency
			cfg.Streams.Partitions = streams.DefaultPartitions
			svc := h.newService(cfg, nil)
			svc.log = slog.New(slog.DiscardHandler)
			var last uint64
			for range b.N {
				last = h.publishEvent(newEvent(tenant.GetId(), "job.completed"), nil)
			}
			b.ResetTimer()
			h.run(svc)
			h.waitSettled(last)
			b.StopTimer()
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/sec, "events/s")
			b.ReportMetric(float64(b.N*endpoints)/sec, "deliveries/s")
		})
	}
}
