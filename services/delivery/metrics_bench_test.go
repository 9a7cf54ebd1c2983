package delivery

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// BenchmarkMetersAttempt is the instruments' cost per attempt on the hot
// path: a counter, the duration and the end-to-end histograms.
func BenchmarkMetersAttempt(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	ms, err := newMeters(mp.Meter("bench"), false)
	if err != nil {
		b.Fatal(err)
	}
	d := &eventv1.Delivery{EndpointId: "ep_01", AcceptedAt: timestamppb.New(time.Now())}
	r := &result{outcome: eventv1.Outcome_OUTCOME_SUCCESS, status: 200, duration: 3 * time.Millisecond}
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		ms.attempt(ctx, d, r, now)
	}
}
