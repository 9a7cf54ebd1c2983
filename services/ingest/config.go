package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// Defaults of Config.
const (
	DefaultHTTPAddr        = ":8081"
	DefaultMaxDataBytes    = 256 << 10
	DefaultIdempotencyTTL  = 24 * time.Hour
	DefaultMaxInFlight     = 256
	DefaultShutdownTimeout = 15 * time.Second
	DefaultDrainPeriod     = 5 * time.Second
)

// Limits that are not configurable.
const (
	// maxIdempotencyKey is the longest idempotency key, in characters.
	maxIdempotencyKey = 256
	// maxClockSkew is how far an event's timestamp may be from now.
	maxClockSkew = 365 * 24 * time.Hour
	// bodyOverhead is what an HTTP body may hold beyond data: the other
	// fields and whitespace.
	bodyOverhead = 16 << 10
	// envelopeOverhead bounds what a stored event holds beyond data.
	envelopeOverhead = 8 << 10
	// requestTimeout bounds the handling of one publish.
	requestTimeout = 10 * time.Second
)

// Config is the deployment configuration of ingest.
type Config struct {
	// HTTPAddr is the HTTP listen address (default ":8081"; "127.0.0.1:0" in
	// tests).
	HTTPAddr string
	// OperatorToken authenticates POST /v1/events; it is required.
	OperatorToken string
	// MaxDataBytes is the largest accepted data, in bytes (default 256 KiB).
	MaxDataBytes int
	// IdempotencyTTL is how long an idempotency key is remembered (default
	// 24 h).
	IdempotencyTTL time.Duration
	// Streams are the stream settings (replicas, retention, duplicate window).
	Streams streams.Options
	// MaxInFlight caps the NATS publishes one replica handles at once
	// (default 256); further requests wait in the subscription.
	MaxInFlight int
	// ShutdownTimeout bounds how long shutdown waits for in-flight requests
	// (default 15 s), after the drain period.
	ShutdownTimeout time.Duration
	// DrainPeriod is how long HTTP keeps serving after shutdown starts and
	// /readyz fails (default 5 s; negative: none), so load balancers and
	// Kubernetes endpoints stop sending requests before the listener closes.
	DrainPeriod time.Duration
	// RateLimit is the per-tenant ingest quota, applied when Deps.Redis is
	// set (default 1,000 events/s, burst 2,000).
	RateLimit RateLimit
	// MetricsTenantLabels adds a tenant label to
	// pulsehooks_ingest_events_total: one series per tenant, so off by
	// default (PULSEHOOKS_METRICS_TENANT_LABELS).
	MetricsTenantLabels bool
}

// withDefaults fills unset fields and checks the others.
func (c Config) withDefaults() (Config, error) {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.MaxDataBytes == 0 {
		c.MaxDataBytes = DefaultMaxDataBytes
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	switch {
	case c.DrainPeriod == 0:
		c.DrainPeriod = DefaultDrainPeriod
	case c.DrainPeriod < 0:
		c.DrainPeriod = 0
	}
	var errs []error
	var rerr error
	if c.RateLimit, rerr = c.RateLimit.withDefaults(); rerr != nil {
		errs = append(errs, rerr)
	}
	if c.OperatorToken == "" {
		errs = append(errs, errors.New("OperatorToken is required"))
	}
	if c.MaxDataBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxDataBytes is %d, want a positive size", c.MaxDataBytes))
	}
	if c.IdempotencyTTL < 0 {
		errs = append(errs, fmt.Errorf("IdempotencyTTL is %v, want a positive duration", c.IdempotencyTTL))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("MaxInFlight is %d, want a positive number", c.MaxInFlight))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("ShutdownTimeout is %v, want a positive duration", c.ShutdownTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("ingest configuration: %w", err)
	}
	return c, nil
}

// maxBodyBytes is the largest HTTP body accepted.
func (c Config) maxBodyBytes() int64 {
	return int64(c.MaxDataBytes) + bodyOverhead
}
