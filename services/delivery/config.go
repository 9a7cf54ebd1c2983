package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/relayurl"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// Defaults and limits of Config.
const (
	// DefaultAckWait is how long JetStream waits for a delivery's ack before
	// redelivering it: a killed worker's deliveries return after it. Held
	// deliveries get InProgress every AckWait/3, so attempts longer than it
	// (up to MaxTimeout) stay with their worker.
	DefaultAckWait = streams.DefaultDeliveryAckWait
	// DefaultLeaseTTL is how long a worker's membership and partition
	// leases live without renewal: a killed worker's partitions are taken
	// over after it.
	DefaultLeaseTTL = streams.DefaultLeaseTTL
	// minLeaseTTL keeps renewals (every LeaseTTL/5) at a sane rate.
	minLeaseTTL = time.Second
	// DefaultTimeout is the attempt timeout of endpoints that set none.
	DefaultTimeout = 15 * time.Second
	// MinTimeout and MaxTimeout bound an endpoint's own timeout.
	MinTimeout = time.Second
	MaxTimeout = 30 * time.Second
	// DefaultLaneConcurrency is how many attempts one endpoint may have in flight.
	DefaultLaneConcurrency = 8
	// DefaultLaneQueue is how many deliveries of one endpoint may wait for a slot.
	DefaultLaneQueue = 64
	// DefaultLaneMaxWait is how long a delivery may wait in its endpoint's
	// lane queue before it is put off to the schedule.
	DefaultLaneMaxWait = 5 * time.Second
	// DefaultShutdownGrace is how long shutdown waits for attempts in
	// flight.
	DefaultShutdownGrace = 10 * time.Second
	// DefaultMaxInFlight is how many attempts one worker may have in flight
	// across all endpoints.
	DefaultMaxInFlight = 1024
	// DefaultIdempotencyTTL is how long a completed delivery is remembered.
	DefaultIdempotencyTTL = 7 * 24 * time.Hour
	// DefaultRetryDelay is how long a delivery waits when it cannot be
	// handled now (Redis or the retry schedule unreachable, the request
	// cannot be built) before JetStream delivers it again.
	DefaultRetryDelay = 5 * time.Second
	// maxReplicaWait keeps a replica's confirmation within the Redis
	// call's own timeout (redisTimeout).
	maxReplicaWait = 2 * time.Second
	// DefaultJitter spreads each retry delay by ±20%.
	DefaultJitter = 0.2
	// DefaultDisableAfter is how long an endpoint may fail without a success
	// before it is disabled.
	DefaultDisableAfter = 5 * 24 * time.Hour
	// DefaultFailingAfter is the number of failed attempts of one delivery
	// that publishes message.attempt.failing.
	DefaultFailingAfter = 3
	// DefaultClaimLease is how long claimed schedule items are held before
	// another worker may claim them. It stays well within the DELIVERIES
	// duplicate window, so a re-claimed item republished after a crash is
	// stored once.
	DefaultClaimLease = 30 * time.Second
	// DefaultClaimBatch is how many due items one claim takes.
	DefaultClaimBatch = 500
	// DefaultPollInterval bounds how long the scheduler waits between looks
	// at the schedule; it also wakes for items it knows are due sooner.
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultDeferDelay is how soon a delivery put off because its
	// endpoint's lane is full comes back, at the earliest.
	DefaultDeferDelay = time.Second
	// DefaultUnknownEndpointGrace is how long a delivery for an endpoint this
	// worker does not know yet is kept before it is dropped.
	DefaultUnknownEndpointGrace = 30 * time.Second
	// minAckWait keeps the InProgress cadence (AckWait/3) sensible.
	minAckWait = time.Second
	// minClaimLease keeps a lease longer than the handling of a claim.
	minClaimLease = 100 * time.Millisecond
	// defaultDuplicateWindow is the streams package's default window.
	defaultDuplicateWindow = 2 * time.Minute
)

// DefaultSchedule returns the default retry schedule: the delay before each
// attempt, the first immediate: 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
// (8 attempts over about 27.6 hours).
func DefaultSchedule() []time.Duration {
	return []time.Duration{0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
}

// ParseSchedule parses a comma-separated list of durations ("0s,5s,5m,30m,
// 2h,5h,10h,10h") into a Schedule.
func ParseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("retry schedule %q: %w", s, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// Config is the configuration of a delivery worker. The zero value of each
// field means its default.
type Config struct {
	// Streams are the deployment settings of the JetStream streams.
	Streams streams.Options
	// AckWait is the ack wait of the partition consumers (default 10s). While
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
	// LaneMaxWait is how long a delivery may wait in its lane's queue
	// (default 5s); one that has waited longer is put off to the schedule,
	// so a slow or hanging endpoint's backlog leaves the stream.
	LaneMaxWait time.Duration
	// ShutdownGrace is how long shutdown, or the release of a partition to
	// another worker, waits for attempts in flight (default 10s), after
	// handing back the deliveries not yet started; an attempt still running
	// then is cancelled, recorded as a timeout and retried on the schedule.
	ShutdownGrace time.Duration
	// LeaseTTL is how long this worker's member key and partition leases
	// live without renewal (default 5s); they are renewed every LeaseTTL/5.
	// Every worker of a deployment must use the same value.
	LeaseTTL time.Duration
	// MaxInFlight caps the attempts in flight in this worker across all
	// endpoints (default 1024), so that a fan-out to thousands of endpoints
	// queues for connections instead of opening thousands at once.
	MaxInFlight int
	// IdempotencyTTL is how long Redis remembers a completed delivery
	// (default 7 days).
	IdempotencyTTL time.Duration
	// RetryDelay is how long a delivery waits when it cannot be handled now:
	// Redis (idempotency records, the retry schedule, rate limits) is
	// unreachable, or the request cannot be built (default 5s). The delivery
	// stays in the stream and JetStream delivers it again.
	RetryDelay time.Duration
	// ReplicaWait bounds how long a write to the retry schedule waits for a
	// Redis replica to confirm it when the primary has replicas; an
	// unconfirmed write leaves the delivery in the stream (default
	// retryq.DefaultReplicaWait, 500 ms; negative: never wait; at most 2 s).
	ReplicaWait time.Duration
	// Schedule is the delay before each attempt; Schedule[0] is the first
	// attempt's and must be 0, and len(Schedule) is the number of attempts
	// (default DefaultSchedule). Tests use a compressed one (milliseconds).
	Schedule []time.Duration
	// Jitter spreads each retry delay uniformly by ±Jitter of itself
	// (default 0.2; a negative value means none; at most 0.5).
	Jitter float64
	// DisableAfter disables an endpoint that has failed every attempt for
	// this long (default 5 days).
	DisableAfter time.Duration
	// FailingAfter is the number of failed attempts of one delivery after
	// which message.attempt.failing is published, and after which a success
	// publishes message.attempt.recovered (default 3).
	FailingAfter int
	// ClaimLease is how long the scheduler holds claimed schedule items
	// (default 30s); it must be shorter than the DELIVERIES duplicate window.
	ClaimLease time.Duration
	// ClaimBatch is how many due items one claim takes (default 500).
	ClaimBatch int
	// PollInterval is the longest the scheduler waits between looks at the
	// schedule (default 250ms).
	PollInterval time.Duration
	// DeferDelay is how soon, at the earliest, a delivery put off because its
	// endpoint's lane is full comes back (default 1s); later ones are spread
	// by the endpoint's observed attempt duration.
	DeferDelay time.Duration
	// UnknownEndpointGrace is how long after it was stored a delivery for an
	// endpoint missing from the configuration view is retried (the view may
	// lag the fanout's by a moment) before it is dropped (default 30s).
	UnknownEndpointGrace time.Duration
	// AllowNetworks re-opens address ranges the SSRF policy refuses
	// (loopback, private…); for tests and local development.
	AllowNetworks []netip.Prefix
	// UserAgent is sent with every request (default "pulsehooks/<version>").
	UserAgent string
	// RelayURL is the base URL at which this worker reaches the config
	// service's relay route (PULSEHOOKS_RELAY_URL), such as
	// http://pulsehooks-config:8080. Exactly the relay URLs under it
	// (<RelayURL>/relay/v1/<endpoint id>) are sent without the SSRF policy,
	// so the route works at an internal address; every other URL, on that
	// host or any other, is checked as usual. Empty: none.
	RelayURL string
	// MetricsEndpointLabels adds an endpoint label to
	// pulsehooks_delivery_attempts_total: one series per endpoint, so off
	// by default (PULSEHOOKS_METRICS_ENDPOINT_LABELS).
	MetricsEndpointLabels bool
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
	// Pulling is called with true just before the worker starts pulling a
	// partition, and with false once it has stopped.
	Pulling func(partition int, on bool)
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
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.LaneMaxWait == 0 {
		c.LaneMaxWait = DefaultLaneMaxWait
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
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
	if len(c.Schedule) == 0 {
		c.Schedule = DefaultSchedule()
	}
	switch {
	case c.Jitter == 0:
		c.Jitter = DefaultJitter
	case c.Jitter < 0:
		c.Jitter = 0
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = DefaultDisableAfter
	}
	if c.FailingAfter == 0 {
		c.FailingAfter = DefaultFailingAfter
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = DefaultClaimLease
	}
	if c.ClaimBatch == 0 {
		c.ClaimBatch = DefaultClaimBatch
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.DeferDelay == 0 {
		c.DeferDelay = DefaultDeferDelay
	}
	if c.UserAgent == "" {
		c.UserAgent = "pulsehooks/" + Version()
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.RelayURL != "" {
		if _, err := relayurl.Parse(c.RelayURL); err != nil {
			errs = append(errs, fmt.Errorf("RelayURL (PULSEHOOKS_RELAY_URL): %w", err))
		}
	}
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
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("ShutdownGrace %v is negative", c.ShutdownGrace))
	}
	if c.LeaseTTL < minLeaseTTL {
		errs = append(errs, fmt.Errorf("LeaseTTL %v is below %v", c.LeaseTTL, minLeaseTTL))
	}
	if c.LaneMaxWait < 0 {
		errs = append(errs, fmt.Errorf("LaneMaxWait %v is negative", c.LaneMaxWait))
	}
	if c.MaxInFlight < c.LaneConcurrency {
		errs = append(errs, fmt.Errorf("MaxInFlight %d is below LaneConcurrency %d", c.MaxInFlight, c.LaneConcurrency))
	}
	if c.IdempotencyTTL < 0 || c.RetryDelay < 0 || c.UnknownEndpointGrace < 0 {
		errs = append(errs, errors.New("IdempotencyTTL, RetryDelay and UnknownEndpointGrace must not be negative"))
	}
	if c.ReplicaWait > maxReplicaWait {
		errs = append(errs, fmt.Errorf("ReplicaWait %v is over %v", c.ReplicaWait, maxReplicaWait))
	}
	if len(c.Schedule) > 0 && c.Schedule[0] != 0 {
		errs = append(errs, fmt.Errorf("Schedule[0] is %v: the first attempt is immediate, so it must be 0", c.Schedule[0]))
	}
	for i, d := range c.Schedule {
		if d < 0 {
			errs = append(errs, fmt.Errorf("the delay before attempt %d, Schedule[%d] = %v, is negative", i+1, i, d))
		}
	}
	if c.Jitter > 0.5 {
		errs = append(errs, fmt.Errorf("jitter %v is above 0.5", c.Jitter))
	}
	if c.FailingAfter < 1 || c.ClaimBatch < 1 {
		errs = append(errs, fmt.Errorf("FailingAfter %d and ClaimBatch %d must be at least 1", c.FailingAfter, c.ClaimBatch))
	}
	if c.DisableAfter < 0 || c.PollInterval < 0 || c.DeferDelay < 0 {
		errs = append(errs, errors.New("DisableAfter, PollInterval and DeferDelay must not be negative"))
	}
	window := c.Streams.DuplicateWindow
	if window <= 0 {
		window = defaultDuplicateWindow
	}
	if c.ClaimLease < minClaimLease || c.ClaimLease >= window {
		errs = append(errs, fmt.Errorf("ClaimLease %v is outside %v and the duplicate window %v", c.ClaimLease, minClaimLease, window))
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
