package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// Defaults of the per-tenant ingest quota (Config.RateLimit).
const (
	// DefaultEventsPerSecond is the sustained rate of events ingest
	// accepts per tenant, across every replica.
	DefaultEventsPerSecond = 1000
	// DefaultBurst is how many events a tenant may publish at once above
	// that rate.
	DefaultBurst = 2000
	// NoRateLimit in a RateLimit field turns the limit off.
	NoRateLimit = -1
)

// Timing of the limiter.
const (
	// rateLimitTimeout bounds the Redis round trip; past it the event is
	// accepted (fail open).
	rateLimitTimeout = 250 * time.Millisecond
	// failOpenLogEvery spaces the warnings while Redis cannot be asked.
	failOpenLogEvery = 10 * time.Second
	// failOpenPause is how long after a failed Redis call events are
	// accepted without asking, so an unreachable Redis does not add its
	// timeout to every publish.
	failOpenPause = time.Second
	// rateLimitPrefix is prepended (after redis_rate's "rate:") to the
	// tenant id to make its Redis key.
	rateLimitPrefix = "ph:ingest:"
)

// RateLimit is the deployment's per-tenant ingest quota; a tenant's
// record in the config service can override either field
// (configv1.TenantQuotas). Zero fields take the defaults; EventsPerSecond
// NoRateLimit (-1) turns the limit off for tenants without an override.
type RateLimit struct {
	// EventsPerSecond is the sustained rate per tenant (default 1,000,
	// PULSEHOOKS_QUOTA_INGEST_EVENTS_PER_SECOND).
	EventsPerSecond int
	// Burst is how many events are accepted at once (default 2,000,
	// PULSEHOOKS_QUOTA_INGEST_BURST).
	Burst int
}

// withDefaults fills zero fields and checks the others.
func (r RateLimit) withDefaults() (RateLimit, error) {
	if r.EventsPerSecond == 0 {
		r.EventsPerSecond = DefaultEventsPerSecond
	}
	if r.Burst == 0 {
		r.Burst = DefaultBurst
	}
	if r.EventsPerSecond < NoRateLimit {
		return r, fmt.Errorf("RateLimit.EventsPerSecond is %d, want a positive rate or -1 for no limit (PULSEHOOKS_QUOTA_INGEST_EVENTS_PER_SECOND)", r.EventsPerSecond)
	}
	if r.Burst < 1 {
		return r, fmt.Errorf("RateLimit.Burst is %d, want a positive number (PULSEHOOKS_QUOTA_INGEST_BURST)", r.Burst)
	}
	return r, nil
}

// limiter applies each tenant's ingest quota with redis_rate's GCRA, shared
// by every replica through Redis. When Redis cannot answer, events are
// accepted: ingestion stays available and the limit is briefly not held.
type limiter struct {
	rl   *redis_rate.Limiter // nil: no Redis, no limits
	def  RateLimit
	log  *slog.Logger
	last atomic.Int64 // unix nanoseconds of the last fail-open warning
	// pausedUntil (unix nanoseconds) is when to ask Redis again after a
	// failure.
	pausedUntil atomic.Int64
}

func newLimiter(rdb redis.UniversalClient, def RateLimit, log *slog.Logger) *limiter {
	l := &limiter{def: def, log: log}
	if rdb != nil {
		l.rl = redis_rate.NewLimiter(rdb)
	}
	return l
}

// limitFor is the tenant's quota: its overrides, else the deployment's.
// ok is false when the tenant has no limit.
func (l *limiter) limitFor(t *configv1.Tenant) (rate, burst int, ok bool) {
	rate, burst = l.def.EventsPerSecond, l.def.Burst
	if q := t.GetQuotas(); q != nil {
		if q.IngestEventsPerSecond != nil {
			rate = int(q.GetIngestEventsPerSecond())
		}
		if q.IngestBurst != nil {
			burst = int(q.GetIngestBurst())
		}
	}
	return rate, burst, rate != NoRateLimit
}

// allow takes one event from the tenant's quota, or returns a 429 problem
// saying when to retry.
func (l *limiter) allow(ctx context.Context, t *configv1.Tenant) error {
	if l.rl == nil {
		return nil
	}
	rate, burst, ok := l.limitFor(t)
	if !ok || time.Now().UnixNano() < l.pausedUntil.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, rateLimitTimeout)
	defer cancel()
	res, err := l.rl.Allow(ctx, rateLimitPrefix+t.GetId(), redis_rate.Limit{Rate: rate, Burst: burst, Period: time.Second})
	if err != nil {
		l.pausedUntil.Store(time.Now().Add(failOpenPause).UnixNano())
		l.failOpen(ctx, t.GetId(), err)
		return nil
	}
	if res.Allowed > 0 {
		return nil
	}
	return &problem{
		status:     http.StatusTooManyRequests,
		code:       pulseclient.CodeRateLimited,
		message:    fmt.Sprintf("tenant %s is limited to %d events/s (burst %d); retry later", t.GetId(), rate, burst),
		retryAfter: res.RetryAfter,
	}
}

// failOpen logs, at most every failOpenLogEvery, that an event was accepted
// without asking Redis.
func (l *limiter) failOpen(ctx context.Context, tenantID string, err error) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(failOpenLogEvery) || !l.last.CompareAndSwap(last, now) {
		return
	}
	l.log.WarnContext(context.WithoutCancel(ctx), "ingest rate limit not applied: Redis did not answer; accepting events (fail open)",
		"tenant_id", tenantID, "err", err, "deadline", errors.Is(err, context.DeadlineExceeded))
}

// retryAfterSeconds is a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
