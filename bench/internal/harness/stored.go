package harness

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/bench/internal/count"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// storedTimes reads every message of EVENTS with an ordered consumer and
// returns, by message id (the Nats-Msg-Id ingest sets, which is the
// webhook-id of the event's deliveries), the time JetStream stored it, in
// Unix nanoseconds: the stream's own timestamp of the message, taken when
// nats-server stored it, before ingest's reply leaves.
func storedTimes(ctx context.Context, natsURL string) (map[string]int64, error) {
	nc, err := nats.Connect(natsURL, nats.Name("pulsehooks-bench-stored"))
	if err != nil {
		return nil, fmt.Errorf("stored times: connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("stored times: %w", err)
	}
	st, err := js.Stream(ctx, streams.Events)
	if err != nil {
		return nil, fmt.Errorf("stored times: stream %s: %w", streams.Events, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stored times: stream info: %w", err)
	}
	out := make(map[string]int64, info.State.Msgs)
	if info.State.Msgs == 0 {
		return out, nil
	}
	last := info.State.LastSeq
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("stored times: ordered consumer: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("stored times: fetch: %w", err)
		}
		var seq uint64
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("stored times: metadata: %w", err)
			}
			seq = md.Sequence.Stream
			if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
				out[id] = md.Timestamp.UnixNano()
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("stored times: fetch: %w", err)
		}
		if seq >= last {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("stored times: read %d messages of EVENTS up to sequence %d of %d in 2 min", len(out), seq, last)
		}
	}
}

// fillFromStore sets the from-store latency fields of res from the events'
// stored times in EVENTS; it runs after the load and its CPU accounting.
func (h *Harness) fillFromStore(ctx context.Context, sys *system, res *Result) error {
	if res.Data == nil {
		return nil
	}
	stored, err := storedTimes(ctx, sys.natsURL)
	if err != nil {
		return err
	}
	d := res.Data
	s := count.FromStore(d.Acks, d.Subscribers, d.Receipts, d.Ignore, stored)
	ms := func(v time.Duration) float64 { return round(float64(v) / 1e6) }
	res.P50MsFromStore = ms(count.Percentile(s.Latencies, 50))
	res.P99MsFromStore = ms(count.Percentile(s.Latencies, 99))
	res.Extra["from_store_deliveries"] = len(s.Latencies)
	if s.Missing > 0 {
		res.Extra["from_store_missing"] = s.Missing
	}
	if s.Early > 0 {
		res.Extra["from_store_early"] = s.Early
	}
	h.logf("  from the stored event: p50 %.2f ms p99 %.2f ms over %d deliveries (%d without a stored time)",
		res.P50MsFromStore, res.P99MsFromStore, len(s.Latencies), s.Missing)
	return nil
}
