// Package loadgen drives load: Publish sends job events to ingest with
// pkg/pulseclient over NATS, at a fixed rate or as fast as ingest accepts
// them, and records when each was acknowledged; Ceiling POSTs pre-signed
// webhooks straight to the receiver, to measure what this machine can do
// without pulsehooks in between.
package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/bench/internal/receiver"
	"github.com/pulsehooks/pulsehooks/bench/internal/records"
	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
)

// PublishConfig configures Publish.
type PublishConfig struct {
	// NATSURL is the NATS server ingest listens on.
	NATSURL string
	// Conns is the number of NATS connections publishes are spread over
	// (default 2).
	Conns int
	// Tenants receive the events in turn: event k goes to Tenants[k mod n].
	Tenants []string
	// EventType of every event (default job.completed).
	EventType string
	// Rate is events per second; 0 sends as fast as ingest accepts them.
	Rate float64
	// Concurrency is the number of publishes in flight at most (default 64).
	Concurrency int
	// Duration is how long to send (default 10 s).
	Duration time.Duration
	// Events stops after this many events; 0 means no limit.
	Events int
	// Size is the size of the webhook body each event makes (default 1024).
	Size int
	// PublishTimeout bounds one publish, its retries included (default 30 s).
	PublishTimeout time.Duration
	// Backlog, when positive, pauses publishing while more than this many
	// deliveries of acknowledged events have not reached the receiver at
	// Receiver (a receiver's base URL), counting DeliveriesPerEvent per event.
	Backlog            int
	DeliveriesPerEvent int
	Receiver           string
}

// PublishSummary is what Publish did.
type PublishSummary struct {
	// Sent is the number of publishes started, Acked those acknowledged as
	// new events, Errors those that failed, Duplicates those ingest said it
	// had already stored (never expected: every event has its own key).
	Sent       int64 `json:"sent"`
	Acked      int64 `json:"acked"`
	Errors     int64 `json:"errors"`
	Duplicates int64 `json:"duplicates"`
	// ErrorSample is the first few errors.
	ErrorSample []string `json:"error_sample,omitempty"`
	// Seconds is from the first publish to the last ack.
	Seconds float64 `json:"seconds"`
	// AcceptedPerS is Acked / Seconds.
	AcceptedPerS float64 `json:"accepted_per_s"`
	// AckP50Ms and AckP99Ms are publish-to-ack times.
	AckP50Ms float64 `json:"ack_p50_ms"`
	AckP99Ms float64 `json:"ack_p99_ms"`
	// PausedMs is how long publishers waited, in total, for the backlog to
	// shrink below Backlog.
	PausedMs float64 `json:"paused_ms,omitempty"`
	// MaxBehindMs is how late, at worst, a fixed-rate publish started
	// compared with its schedule (the generator could not keep up).
	MaxBehindMs float64 `json:"max_behind_ms"`
}

func (c PublishConfig) withDefaults() PublishConfig {
	if c.Conns <= 0 {
		c.Conns = 2
	}
	if c.EventType == "" {
		c.EventType = "job.completed"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Size <= 0 {
		c.Size = 1024
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 30 * time.Second
	}
	return c
}

// Publish sends events until the duration passes or the event limit is
// reached, writes one records.Ack line to out per acknowledged event, and
// returns a summary.
func Publish(ctx context.Context, cfg PublishConfig, out io.Writer) (PublishSummary, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Tenants) == 0 {
		return PublishSummary{}, fmt.Errorf("no tenants to publish to")
	}
	clients := make([]*pulseclient.Client, cfg.Conns)
	for i := range clients {
		nc, err := nats.Connect(cfg.NATSURL, nats.Name(fmt.Sprintf("pulsehooks-loadgen-%d", i)), nats.MaxReconnects(-1))
		if err != nil {
			return PublishSummary{}, fmt.Errorf("connect to %s: %w", cfg.NATSURL, err)
		}
		defer nc.Close()
		clients[i] = pulseclient.New(nc)
	}
	run := rand.Text()[:8]
	var (
		sum      PublishSummary
		next     atomic.Int64
		mu       sync.Mutex
		acks     = make([]records.Ack, 0, 1024)
		behindNs atomic.Int64
		wg       sync.WaitGroup
	)
	var delivered atomic.Int64
	var pausedNs atomic.Int64
	if cfg.Backlog > 0 {
		if cfg.Receiver == "" || cfg.DeliveriesPerEvent <= 0 {
			return PublishSummary{}, fmt.Errorf("a backlog limit needs the receiver URL and the deliveries per event")
		}
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		rc := receiver.Client{Base: cfg.Receiver}
		go func() {
			for pctx.Err() == nil {
				if st, err := rc.Stats(pctx); err == nil {
					delivered.Store(st.OK)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	// wait blocks while the backlog is over the limit.
	wait := func() {
		if cfg.Backlog <= 0 {
			return
		}
		began := time.Now()
		for ctx.Err() == nil && atomic.LoadInt64(&sum.Acked)*int64(cfg.DeliveriesPerEvent)-delivered.Load() > int64(cfg.Backlog) {
			time.Sleep(2 * time.Millisecond)
		}
		pausedNs.Add(int64(time.Since(began)))
	}
	start := time.Now()
	end := start.Add(cfg.Duration)
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []records.Ack
			defer func() {
				mu.Lock()
				acks = append(acks, local...)
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if cfg.Events > 0 && k >= int64(cfg.Events) {
					return
				}
				if interval > 0 {
					due := start.Add(time.Duration(k) * interval)
					// Stop at the end of the schedule, and also when
					// publishes fell so far behind it (ingest stalled)
					// that the duration has passed.
					if !due.Before(end) || time.Since(end) > time.Second {
						return
					}
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					} else if -d > time.Duration(behindNs.Load()) {
						behindNs.Store(int64(-d))
					}
				} else if !time.Now().Before(end) {
					return
				}
				wait()
				tenant := cfg.Tenants[int(k)%len(cfg.Tenants)]
				jobID := fmt.Sprintf("job_%s_%d", run, k)
				atomic.AddInt64(&sum.Sent, 1)
				pctx, cancel := context.WithTimeout(ctx, cfg.PublishTimeout)
				sent := time.Now()
				res, err := clients[int(k)%len(clients)].Publish(pctx, pulseclient.PublishInput{
					TenantID:       tenant,
					EventType:      cfg.EventType,
					Data:           Data(cfg.EventType, jobID, cfg.Size),
					IdempotencyKey: "bench-" + jobID,
				})
				at := time.Now()
				cancel()
				switch {
				case err != nil:
					atomic.AddInt64(&sum.Errors, 1)
					mu.Lock()
					if len(sum.ErrorSample) < 5 {
						sum.ErrorSample = append(sum.ErrorSample, err.Error())
					}
					mu.Unlock()
				case res.Duplicate:
					atomic.AddInt64(&sum.Duplicates, 1)
				default:
					atomic.AddInt64(&sum.Acked, 1)
					local = append(local, records.Ack{ID: res.MessageID, Tenant: tenant, Sent: sent.UnixNano(), At: at.UnixNano()})
				}
			}
		}()
	}
	wg.Wait()
	bw := bufio.NewWriterSize(out, 256<<10)
	var first, last int64
	lat := make([]time.Duration, 0, len(acks))
	for _, a := range acks {
		if first == 0 || a.Sent < first {
			first = a.Sent
		}
		last = max(last, a.At)
		lat = append(lat, time.Duration(a.At-a.Sent))
		if err := records.WriteAck(bw, a); err != nil {
			return sum, fmt.Errorf("write acks: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return sum, fmt.Errorf("write acks: %w", err)
	}
	if last > first {
		sum.Seconds = float64(last-first) / 1e9
		sum.AcceptedPerS = float64(sum.Acked) / sum.Seconds
	}
	sum.AckP50Ms, sum.AckP99Ms = percentileMs(lat, 50), percentileMs(lat, 99)
	sum.MaxBehindMs = float64(behindNs.Load()) / 1e6
	sum.PausedMs = float64(pausedNs.Load()) / 1e6
	return sum, ctx.Err()
}
