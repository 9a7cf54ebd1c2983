// Package delivery is the delivery worker: it pulls deliveries from the
// per-partition consumers of the DELIVERIES stream, signs each event the
// Standard Webhooks way, POSTs it to its endpoint, records the attempt in
// ATTEMPTS, and acks the delivery or, after a failure, moves it to the Redis
// retry schedule (pkg/retryq) with backoff.
//
// The partitions are spread evenly over the live workers, each holding a
// lease per partition in a JetStream KV bucket (balancer), with the pinned
// priority group as the backstop against two pulling one; inside a worker each endpoint has its own lane with a concurrency cap, so a slow
// endpoint never holds up the others, and deliveries of a saturated, failing
// or rate-limited endpoint leave the stream for the schedule rather than
// wait in it. Every worker's scheduler returns due deliveries to the stream.
// Redis remembers completed deliveries, so a redelivery after a crash between
// the 2xx and the ack is not sent again.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/configwatch"
	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// tracerName names the tracer of this package.
const tracerName = "github.com/pulsehooks/pulsehooks/services/delivery"

// Deps are the connections and tools a worker uses; it does not close them.
type Deps struct {
	NATS           *nats.Conn
	Redis          redis.UniversalClient
	Config         configv1.ConfigServiceClient
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	// Liveness, if set, has the partition pull loops and the scheduler
	// registered in it, so /healthz fails while one is stuck.
	Liveness *health.Liveness
	// MeterProvider makes the worker's instruments; nil records none.
	MeterProvider metric.MeterProvider
}

// Service is a delivery worker.
type Service struct {
	cfg       Config
	log       *slog.Logger
	view      *configwatch.View
	balancer  *balancer
	deliverer *deliverer
	deferrer  *deferrer
	scheduler *scheduler
	control   *control
	states    *endpointStates
	live      *health.Liveness
	started   atomic.Bool
	ready     atomic.Bool
}

// New checks the configuration, ensures the DELIVERIES, ATTEMPTS and
// OPERATIONAL streams, the partition consumers and the membership and
// lease buckets, and prepares the worker. It starts nothing: Run does.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.NATS == nil || deps.Redis == nil || deps.Config == nil || deps.Logger == nil || deps.TracerProvider == nil {
		return nil, errors.New("delivery: NATS, Redis, Config, Logger and TracerProvider are all required")
	}
	js, err := jetstream.New(deps.NATS)
	if err != nil {
		return nil, fmt.Errorf("delivery: jetstream: %w", err)
	}
	// JetStream may be slow to come up (a cluster electing leaders, a
	// restarting server): wait for it rather than exit.
	var (
		stream          jetstream.Stream
		n               int
		events          eventSource
		members, leases jetstream.KeyValue
	)
	err = streams.Retry(ctx, deps.Logger, "ensure streams, partition consumers and lease buckets", func(ctx context.Context) error {
		var err error
		stream, n, events, err = ensureStreams(ctx, js, cfg, deps.Logger)
		if err != nil {
			return err
		}
		members, leases, err = streams.EnsureOwnership(ctx, js, cfg.Streams, cfg.LeaseTTL)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	queue, err := retryq.New(deps.Redis, retryq.Options{Partitions: n, ReplicaWait: cfg.ReplicaWait})
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	log := deps.Logger
	view := configwatch.New(deps.Config, log, configv1.Kind_KIND_ENDPOINT)
	s := &Service{cfg: cfg, log: log, view: view, states: newEndpointStates(), live: deps.Liveness}
	tracer := deps.TracerProvider.Tracer(tracerName)
	meter := metrics.Meter(deps.MeterProvider, meterName)
	ms, err := newMeters(meter, cfg.MetricsEndpointLabels)
	if err != nil {
		return nil, err
	}
	s.scheduler = newScheduler(cfg, log, queue, events, js, tracer)
	s.deliverer = &deliverer{
		cfg:       cfg,
		log:       log,
		tracer:    tracer,
		endpoints: view,
		idem:      newIdempotency(deps.Redis, cfg.IdempotencyTTL),
		sender:    &sender{client: newHTTPClient(cfg), cfg: cfg, tracer: tracer},
		recorder:  recorder{js: js, tracer: tracer},
		queue:     queue,
		kick:      s.scheduler.kick,
		backoff:   newBackoff(cfg),
		states:    s.states,
		limiter:   limiter{rdb: deps.Redis},
		streaks:   streaks{rdb: deps.Redis, keep: cfg.DisableAfter + slices.Max(cfg.Schedule)},
		config:    deps.Config,
		ops:       opEvents{js: js, log: log},
		inFlight:  make(chan struct{}, cfg.MaxInFlight),
		meters:    ms,
	}
	s.deferrer = newDeferrer(s.deliverer)
	s.control = &control{nc: deps.NATS, log: log.With("component", "control"), endpoints: view, queue: queue,
		streaks: s.deliverer.streaks, states: s.states, kick: s.scheduler.kick}
	consumers := make([]jetstream.Consumer, n)
	for i := range n {
		c, err := js.Consumer(ctx, streams.Deliveries, streams.PartitionConsumer(i))
		if err != nil {
			return nil, fmt.Errorf("delivery: consumer %s: %w", streams.PartitionConsumer(i), err)
		}
		consumers[i] = c
	}
	s.balancer = newBalancer(n, cfg, members, leases, log, func(i int) *partition {
		p := newPartition(i, consumers[i], stream, cfg, log, s.states, s.deferrer, s.deliverer.deliver)
		p.loop = s.watchPull(p)
		return p
	})
	if err := observeGauges(meter, queue, consumers, func() int { return len(s.balancer.partitions()) }); err != nil {
		return nil, err
	}
	return s, nil
}

// Ready reports whether the worker has its configuration and has joined
// the workers sharing the partitions (it may hold none when there are more
// workers than partitions); it turns false as soon as shutdown starts.
func (s *Service) Ready() bool { return s.ready.Load() }

// Partitions returns the partitions this worker holds and pulls now.
func (s *Service) Partitions() []int { return s.balancer.partitions() }

// Run watches the configuration, and once the first snapshot is in, joins
// the workers and pulls its share of the partitions until ctx ends. It then
// shuts down gracefully: it stops pulling, hands back at once the
// deliveries it holds but has not started, gives up its partitions (pins
// and leases) so other workers take them over now, lets attempts in flight
// finish for up to ShutdownGrace and settles them (cutting short, as
// timeouts to retry, those still running then), and returns nil.
func (s *Service) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("delivery: Run called twice")
	}
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		_ = s.view.Run(ctx) // returns nil when ctx ends; it retries errors itself
	}()
	defer func() { <-viewDone }()
	if err := s.view.WaitReady(ctx); err != nil {
		return nil // ctx ended before the first snapshot
	}

	// Deliveries held by this worker are put off until the attempts in
	// flight are settled, not only until ctx ends.
	s.deferrer.start(context.WithoutCancel(ctx))
	var scheduling sync.WaitGroup
	scheduling.Add(2)
	schedLoop := s.live.Loop("delivery: retry scheduler", health.Always)
	go func() {
		defer scheduling.Done()
		defer schedLoop.Close()
		s.scheduler.run(ctx, schedLoop)
	}()
	go func() {
		defer scheduling.Done()
		s.pruneStates(ctx)
	}()
	if err := s.control.start(ctx); err != nil {
		s.log.ErrorContext(ctx, "retry-now requests are not answered by this worker", "err", err)
	} else {
		defer s.control.stop()
	}
	parts := s.balancer.run(ctx, func() {
		s.ready.Store(true)
		s.log.InfoContext(ctx, "delivery worker running", "member", s.balancer.id, "partitions", s.balancer.partitions())
	})
	s.ready.Store(false)
	s.log.Info("delivery worker stopping: deliveries not started handed back and partitions given up; finishing attempts in flight", "partitions", len(parts))
	var settling sync.WaitGroup
	for _, p := range parts {
		settling.Go(func() { p.settle(s.cfg.ShutdownGrace) })
	}
	settling.Wait()
	s.deferrer.close()
	scheduling.Wait()
	s.log.Info("delivery worker stopped")
	return nil
}

// pruneStates forgets idle endpoints' states every minute until ctx ends.
func (s *Service) pruneStates(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.states.prune(now)
		}
	}
}

// ensureStreams ensures DELIVERIES with its partition consumers, STATES,
// ATTEMPTS and OPERATIONAL, binds EVENTS, and returns the DELIVERIES stream, the
// partition count and the event source.
func ensureStreams(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (jetstream.Stream, int, eventSource, error) {
	stream, err := streams.EnsureDeliveries(ctx, js, cfg.Streams, cfg.AckWait)
	if err != nil {
		return nil, 0, eventSource{}, err
	}
	if _, err := streams.EnsureStates(ctx, js, cfg.Streams); err != nil {
		return nil, 0, eventSource{}, err
	}
	if _, err := streams.EnsureAttempts(ctx, js, cfg.Streams); err != nil {
		return nil, 0, eventSource{}, err
	}
	if _, err := streams.EnsureOperational(ctx, js, cfg.Streams); errors.Is(err, streams.ErrOperationalCaptured) {
		// A stream made by hand for them stores (and acks) the events.
		log.WarnContext(ctx, "operational events are kept by another stream, not "+streams.Operational+"; delete it to let "+streams.Operational+" keep them", "err", err)
	} else if err != nil {
		return nil, 0, eventSource{}, err
	}
	n, err := streams.PartitionsOf(ctx, js)
	if err != nil {
		return nil, 0, eventSource{}, err
	}
	events, err := bindEvents(ctx, js, cfg.Streams)
	if err != nil {
		return nil, 0, eventSource{}, err
	}
	return stream, n, events, nil
}
