package config

import (
	"context"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/services/config/attemptlog"
)

// meterName names the meter of this package.
const meterName = "github.com/pulsehooks/pulsehooks/services/config"

// observeAttemptLogLag registers pulsehooks_attemptlog_lag_seconds: per
// stream the attempt log follows, how far the last message it indexed is
// behind the stream's last message (by their stored times; 0 when it has
// indexed the last one). The streams are asked at most every
// metrics.ServerReadInterval.
func observeAttemptLogLag(m metric.Meter, js jetstream.JetStream, alog *attemptlog.Store, ix *attemptlog.Indexer) error {
	lag, err := m.Float64ObservableGauge("pulsehooks.attemptlog.lag",
		metric.WithDescription("How far this replica's attempt log is behind each stream: the stored time of the stream's last message minus that of the last one indexed."),
		metric.WithUnit("s"))
	if err != nil {
		return fmt.Errorf("config metrics: %w", err)
	}
	names := []string{streams.Events, streams.Attempts}
	sets := make([]metric.ObserveOption, len(names))
	for i, n := range names {
		sets[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("stream", n)))
	}
	// A stream that does not exist yet, or whose lag is not known yet (behind
	// and nothing committed since the start), has no value.
	lags := metrics.NewCache(metrics.ServerReadInterval, func(ctx context.Context) ([]float64, error) {
		out := make([]float64, len(names))
		for i, n := range names {
			out[i] = -1
			st, err := js.Stream(ctx, n)
			if err != nil {
				continue
			}
			last := st.CachedInfo().State
			seq, at, ok := ix.Progress(n)
			if !ok {
				if seq, err = alog.Position(n); err != nil {
					continue
				}
			}
			switch {
			case seq >= last.LastSeq:
				out[i] = 0
			case ok:
				out[i] = max(last.LastTime.Sub(at).Seconds(), 0)
			}
		}
		return out, nil
	})
	_, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ls, err := lags.Get(ctx)
		if err != nil {
			return nil
		}
		for i, v := range ls {
			if v >= 0 {
				o.ObserveFloat64(lag, v, sets[i])
			}
		}
		return nil
	}, lag)
	if err != nil {
		return fmt.Errorf("config metrics: %w", err)
	}
	return nil
}

// withMetrics serves metrics at GET /metrics, outside the traced routes (a
// scrape is not worth a span); a nil metrics leaves next alone.
func withMetrics(next, metrics http.Handler) http.Handler {
	if metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && r.Method == http.MethodGet {
			metrics.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
