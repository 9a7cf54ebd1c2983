package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
)

// Target is one endpoint the ceiling client POSTs to.
type Target struct {
	// URL of the endpoint.
	URL string `json:"url"`
	// Secret signs its requests.
	Secret string `json:"secret"`
}

// CeilingConfig configures Ceiling.
type CeilingConfig struct {
	// Targets are POSTed to in turn: worker i sends to Targets[i mod n].
	Targets []Target
	// Concurrency is the number of requests in flight (workers).
	Concurrency int
	// PerHostConns is the idle connections kept per host (as delivery's
	// transport does: its lane concurrency). Default Concurrency.
	PerHostConns int
	// Rate is requests per second in total; 0 sends as fast as possible.
	Rate float64
	// Duration is how long to send.
	Duration time.Duration
	// Size is the body size (default 1024).
	Size int
	// Bodies is how many distinct pre-signed bodies each target cycles
	// through (default 64).
	Bodies int
}

// CeilingSummary is what Ceiling measured.
type CeilingSummary struct {
	Requests int64    `json:"requests"`
	OK       int64    `json:"ok"`
	Errors   int64    `json:"errors"`
	Sample   []string `json:"error_sample,omitempty"`
	Seconds  float64  `json:"seconds"`
	// PerS is OK / Seconds.
	PerS float64 `json:"per_s"`
	// P50Ms, P99Ms and MaxMs are request round-trip times.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// signed is one pre-signed request.
type signed struct {
	id, ts, sig string
	body        []byte
}

// Ceiling POSTs pre-signed webhooks of the configured size straight to the
// targets with a minimal Go HTTP client and the given concurrency, and
// measures how many the receiver completes per second.
func Ceiling(ctx context.Context, cfg CeilingConfig) (CeilingSummary, error) {
	if len(cfg.Targets) == 0 || cfg.Concurrency <= 0 || cfg.Duration <= 0 {
		return CeilingSummary{}, fmt.Errorf("ceiling needs targets, a concurrency and a duration")
	}
	if cfg.Size <= 0 {
		cfg.Size = 1024
	}
	if cfg.Bodies <= 0 {
		cfg.Bodies = 64
	}
	if cfg.PerHostConns <= 0 {
		cfg.PerHostConns = cfg.Concurrency
	}
	// Pre-sign every body, so the client does no more than POST.
	now := time.Now()
	ts := now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	bodies := make([][]signed, len(cfg.Targets))
	for t, tg := range cfg.Targets {
		s, err := signature.NewSigner(tg.Secret)
		if err != nil {
			return CeilingSummary{}, fmt.Errorf("target %s: %w", tg.URL, err)
		}
		for b := 0; b < cfg.Bodies; b++ {
			id := fmt.Sprintf("ceil_%d_%d", t, b)
			body := Body("job.completed", ts, id, cfg.Size)
			bodies[t] = append(bodies[t], signed{id: id, ts: strconv.FormatInt(now.Unix(), 10), sig: s.Sign(id, now, body), body: body})
		}
	}
	client := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: cfg.PerHostConns,
		IdleConnTimeout:     90 * time.Second,
	}}
	defer client.CloseIdleConnections()

	var (
		sum      CeilingSummary
		mu       sync.Mutex
		lat      []time.Duration
		wg       sync.WaitGroup
		next     atomic.Int64
		interval time.Duration
	)
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	start := time.Now()
	end := start.Add(cfg.Duration)
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := w % len(cfg.Targets)
			tg := cfg.Targets[t]
			var local []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
			for i := 0; ctx.Err() == nil; i++ {
				if interval > 0 {
					k := next.Add(1) - 1
					due := start.Add(time.Duration(k) * interval)
					if !due.Before(end) {
						return
					}
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
					t = int(k) % len(cfg.Targets)
					tg = cfg.Targets[t]
				} else if !time.Now().Before(end) {
					return
				}
				m := bodies[t][i%len(bodies[t])]
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.URL, bytes.NewReader(m.body))
				if err != nil {
					atomic.AddInt64(&sum.Errors, 1)
					continue
				}
				req.ContentLength = int64(len(m.body))
				req.Header.Set(signature.HeaderID, m.id)
				req.Header.Set(signature.HeaderTimestamp, m.ts)
				req.Header.Set(signature.HeaderSignature, m.sig)
				req.Header.Set("content-type", "application/json")
				req.Header.Set("user-agent", "pulsehooks-bench-ceiling")
				atomic.AddInt64(&sum.Requests, 1)
				began := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					atomic.AddInt64(&sum.Errors, 1)
					mu.Lock()
					if len(sum.Sample) < 5 {
						sum.Sample = append(sum.Sample, err.Error())
					}
					mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				local = append(local, time.Since(began))
				if resp.StatusCode/100 == 2 {
					atomic.AddInt64(&sum.OK, 1)
				} else {
					atomic.AddInt64(&sum.Errors, 1)
				}
			}
		}()
	}
	wg.Wait()
	sum.Seconds = time.Since(start).Seconds()
	sum.PerS = float64(sum.OK) / sum.Seconds
	slices.Sort(lat)
	sum.P50Ms, sum.P99Ms = percentileMs(lat, 50), percentileMs(lat, 99)
	if len(lat) > 0 {
		sum.MaxMs = float64(lat[len(lat)-1]) / 1e6
	}
	return sum, ctx.Err()
}

// percentileMs is the nearest-rank percentile of d in milliseconds; d is
// sorted here.
func percentileMs(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	rank := min(max(int(float64(len(d))*p/100+0.999999999)-1, 0), len(d)-1)
	return float64(d[rank]) / 1e6
}
