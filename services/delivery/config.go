package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// Defaults and limits of Config.
const (
	// DefaultAckWait is how long JetStream waits for a delivery's ack before
	// redelivering it. It exceeds MaxTimeout with margin for the Redis write,
	// the attempt record and the ack, so InProgress is rarely needed.
	DefaultAckWait = 60 * time.Second
	// DefaultTimeout is the attempt timeout of endpoints that set none.
	DefaultTimeout = 15 * time.Second
	// MinTimeout and MaxTimeout bound an endpoint's own timeout.
	MinTimeout = time.Second
	MaxTimeout = 30 * time.Second
	// DefaultLaneConcurrency is how many attempts one endpoint may have in flight.
	DefaultLaneConcurrency = 8
	// DefaultLaneQueue is how many deliveries of one endpoint may wait for a slot.
	DefaultLaneQueue = 64
	// DefaultIdempotencyTTL is how long a completed delivery is remembered.
	DefaultIdempotencyTTL = 7 * 24 * time.Hour
	// DefaultRetryDelay is how long a failed delivery waits before it is
	// delivered again.
	DefaultRetryDelay = 5 * time.Second
	// DefaultUnknownEndpointGrace is how long a delivery for an endpoint this
	// worker does not know yet is kept before it is dropped.
	DefaultUnknownEndpointGrace = 30 * time.Second
	// minAckWait keeps the InProgress cadence (AckWait/3) sensible.
	minAckWait = time.Second
)

// Config is the configuration of a delivery worker. The zero value of each
// field means its default.
type Config struct {
	// Streams are the deployment settings of the JetStream streams.
	Streams streams.Options
	// AckWait is the ack wait of the partition consumers (default 60s). While
	// this worker holds a delivery (queued or in flight) it sends InProgress
	// every AckWait/3, so a short AckWait is safe but costs more messages.
	AckWait time.Duration
	// DefaultTimeout is the attempt timeout (default 15s); an endpoint's
	// timeout_ms overrides it, clamped to 1–30 s.
	DefaultTimeout time.Duration
	// LaneConcurrency caps the attempts in flight per endpoint (default 8).
	LaneConcurrency int
	// LaneQueue bounds the deliveries of one endpoint waiting for a slot
	// (default 64). See lane for what happens beyond it.
	LaneQueue int
	// IdempotencyTTL is how long Redis remembers a completed delivery
	// (default 7 days).
	IdempotencyTTL time.Duration
	// RetryDelay is how long a failed delivery waits before it is delivered
	// again (default 5s).
	RetryDelay time.Duration
	// UnknownEndpointGrace is how long after it was stored a delivery for an
	// endpoint missing from the configuration view is retried (the view may
	// lag the fanout's by a moment) before it is dropped (default 30s).
	UnknownEndpointGrace time.Duration
	// AllowNetworks re-opens address ranges the SSRF policy refuses
	// (loopback, private…); for tests and local development.
	AllowNetworks []netip.Prefix
	// UserAgent is sent with every request (default "pulsehooks/<version>").
	UserAgent string
	// Hooks are for tests only; leave them zero in production.
	Hooks Hooks
}

// Hooks lets tests observe or stop a worker at chosen points. Every field is
// optional. They are for tests only.
type Hooks struct {
	// AfterSuccess is called after a 2xx has been recorded in Redis and the
	// attempt stored, before the JetStream ack. A test can stop the worker
	// here to simulate a crash between the two.
	AfterSuccess func(ctx context.Context, messageID, endpointID string)
}

func (c Config) withDefaults() Config {
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.LaneConcurrency == 0 {
		c.LaneConcurrency = DefaultLaneConcurrency
	}
	if c.LaneQueue == 0 {
		c.LaneQueue = DefaultLaneQueue
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.UnknownEndpointGrace == 0 {
		c.UnknownEndpointGrace = DefaultUnknownEndpointGrace
	}
	if c.UserAgent == "" {
		c.UserAgent = "pulsehooks/" + Version()
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.AckWait < minAckWait {
		errs = append(errs, fmt.Errorf("AckWait %v is below %v", c.AckWait, minAckWait))
	}
	if c.DefaultTimeout < MinTimeout || c.DefaultTimeout > MaxTimeout {
		errs = append(errs, fmt.Errorf("DefaultTimeout %v is outside %v–%v", c.DefaultTimeout, MinTimeout, MaxTimeout))
	}
	if c.LaneConcurrency < 1 {
		errs = append(errs, fmt.Errorf("LaneConcurrency %d is below 1", c.LaneConcurrency))
	}
	if c.LaneQueue < 1 {
		errs = append(errs, fmt.Errorf("LaneQueue %d is below 1", c.LaneQueue))
	}
	if c.IdempotencyTTL < 0 || c.RetryDelay < 0 || c.UnknownEndpointGrace < 0 {
		errs = append(errs, errors.New("IdempotencyTTL, RetryDelay and UnknownEndpointGrace must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("delivery configuration: %w", errors.Join(errs...))
	}
	return nil
}

// attemptTimeout is the timeout of one attempt to an endpoint that asks for
// timeoutMS milliseconds (0: the configured default), clamped to 1–30 s.
func (c Config) attemptTimeout(timeoutMS uint32) time.Duration {
	if timeoutMS == 0 {
		return c.DefaultTimeout
	}
	return min(max(time.Duration(timeoutMS)*time.Millisecond, MinTimeout), MaxTimeout)
}

// Version is the version of the running binary from its build information,
// or "dev" when it has none (go run, tests).
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
