package config

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
	"github.com/pulsehooks/pulsehooks/services/config/attemptlog"
)

// lagGauge collects pulsehooks.attemptlog.lag from r, by stream.
func lagGauge(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "pulsehooks.attemptlog.lag" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Gauge[float64]).DataPoints {
				s, _ := dp.Attributes.Value("stream")
				out[s.AsString()] = dp.Value
			}
		}
	}
	return out
}

// TestAttemptLogLag: no value while the indexer's place is unknown, 0 once
// it has the last message, and, with the indexer stopped, the gap between
// the stored times of the last message and the last one indexed.
func TestAttemptLogLag(t *testing.T) {
	js := testenv.StartNATS(t).JetStream(t)
	ctx := context.Background()
	for _, ensure := range []func(context.Context, jetstream.JetStream, streams.Options) (jetstream.Stream, error){streams.EnsureEvents, streams.EnsureAttempts} {
		if _, err := ensure(ctx, js, streams.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	publish := func() uint64 {
		t.Helper()
		id := ids.New(ids.Message)
		data, err := proto.Marshal(&eventv1.Event{MessageId: id, TenantId: "ten_a", EventType: "job.completed", AcceptedAt: timestamppb.Now(),
			Payload: []byte(`{"type":"job.completed","timestamp":"2026-01-02T03:04:05Z","data":{}}`)})
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.Publish(ctx, streams.EventSubject("ten_a", "job.completed"), data, jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	for range 3 {
		publish()
	}
	store, err := attemptlog.Open(attemptlog.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ix := attemptlog.NewIndexer(store, js, nil)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	if err := observeAttemptLogLag(mp.Meter("test"), js, store, ix, 0); err != nil {
		t.Fatal(err)
	}

	// Not started: EVENTS is ahead of position 0 and nothing says by how
	// long; ATTEMPTS is empty, so nothing is behind.
	if got := lagGauge(t, reader); fmt.Sprint(got) != fmt.Sprint(map[string]float64{streams.Attempts: 0}) {
		t.Errorf("lag before indexing = %v, want only ATTEMPTS at 0", got)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ix.Run(runCtx) }()
	testenv.WaitFor(t, 10*time.Second, func() error {
		if seq, _, ok := ix.Progress(streams.Events); !ok || seq < 3 {
			return fmt.Errorf("indexer at %d (%v), want 3", seq, ok)
		}
		return nil
	})
	if got := lagGauge(t, reader); got[streams.Events] != 0 || got[streams.Attempts] != 0 || len(got) != 2 {
		t.Errorf("lag once indexed = %v, want 0 for both streams", got)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("indexer Run = %v", err)
	}

	seq := publish()
	st, err := js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.GetMsg(ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	_, indexedAt, _ := ix.Progress(streams.Events)
	want := last.Time.Sub(indexedAt).Seconds()
	if want <= 0 {
		t.Fatalf("the message stored after the indexer stopped is not later than the last indexed (%v, %v)", last.Time, indexedAt)
	}
	if got := lagGauge(t, reader); got[streams.Events] != want {
		t.Errorf("lag with the indexer stopped behind one message = %v, want %v s (stored times %v − %v)", got[streams.Events], want, last.Time, indexedAt)
	}
}
