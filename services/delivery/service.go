// Package delivery is the delivery worker: it pulls deliveries from the
// per-partition consumers of the DELIVERIES stream, signs each event the
// Standard Webhooks way, POSTs it to its endpoint, records the attempt in
// ATTEMPTS, and acks the delivery or, after a failure, moves it to the Redis
// retry schedule (pkg/retryq) with backoff.
//
// One worker holds a partition at a time (pinned priority group); inside a
// worker each endpoint has its own lane with a concurrency cap, so a slow
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
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/configwatch"
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
}

// Service is a delivery worker.
type Service struct {
	cfg        Config
	log        *slog.Logger
	view       *configwatch.View
	partitions []*partition
	deliverer  *deliverer
	deferrer   *deferrer
	scheduler  *scheduler
	states     *endpointStates
	started    atomic.Bool
	ready      atomic.Bool
}

// New checks the configuration, ensures the DELIVERIES, ATTEMPTS and
// OPERATIONAL streams and the partition consumers, and prepares the worker.
// It starts nothing: Run does.
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
		stream jetstream.Stream
		n      int
		events eventSource
	)
	err = streams.Retry(ctx, deps.Logger, "ensure streams and partition consumers", func(ctx context.Context) error {
		var err error
		stream, n, events, err = ensureStreams(ctx, js, cfg, deps.Logger)
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
	s := &Service{cfg: cfg, log: log, view: view, states: newEndpointStates()}
	s.scheduler = newScheduler(cfg, log, queue, events, js)
	s.deliverer = &deliverer{
		cfg:       cfg,
		log:       log,
		tracer:    deps.TracerProvider.Tracer(tracerName),
		endpoints: view,
		idem:      newIdempotency(deps.Redis, cfg.IdempotencyTTL),
		sender:    &sender{client: newHTTPClient(cfg, deps.TracerProvider), cfg: cfg},
		recorder:  recorder{js: js},
		queue:     queue,
		kick:      s.scheduler.kick,
		backoff:   newBackoff(cfg),
		states:    s.states,
		limiter:   limiter{rdb: deps.Redis},
		streaks:   streaks{rdb: deps.Redis, keep: cfg.DisableAfter + slices.Max(cfg.Schedule)},
		config:    deps.Config,
		ops:       opEvents{js: js, log: log},
		inFlight:  make(chan struct{}, cfg.MaxInFlight),
	}
	s.deferrer = newDeferrer(s.deliverer)
	for i := 0; i < n; i++ {
		c, err := js.Consumer(ctx, streams.Deliveries, streams.PartitionConsumer(i))
		if err != nil {
			return nil, fmt.Errorf("delivery: consumer %s: %w", streams.PartitionConsumer(i), err)
		}
		s.partitions = append(s.partitions, newPartition(i, c, stream, cfg, log, s.states, s.deferrer, s.deliverer.deliver))
	}
	return s, nil
}

// Ready reports whether the worker has its configuration and is pulling
// deliveries; it turns false as soon as shutdown starts.
func (s *Service) Ready() bool { return s.ready.Load() }

// Run watches the configuration, and once the first snapshot is in, pulls
// every partition until ctx ends. It then shuts down gracefully: it stops
// pulling, leaves deliveries that have not started un-acked (JetStream
// redelivers them to the next worker after the ack wait), lets attempts in
// flight finish and settles them, gives up its partition pins, and returns
// nil.
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

	// Deliveries held by this worker are kept alive until the attempts in
	// flight are settled, not only until ctx ends.
	keepCtx, stopKeep := context.WithCancel(context.WithoutCancel(ctx))
	var pulling, keeping, scheduling sync.WaitGroup
	s.deferrer.start(keepCtx)
	scheduling.Add(2)
	go func() {
		defer scheduling.Done()
		s.scheduler.run(ctx)
	}()
	go func() {
		defer scheduling.Done()
		s.pruneStates(ctx)
	}()
	for _, p := range s.partitions {
		pulling.Add(2)
		go func() {
			defer pulling.Done()
			p.pull(ctx)
		}()
		go func() { // ends with the pulls, before the deferrer closes
			defer pulling.Done()
			p.expireQueued(ctx, s.cfg.LaneMaxWait)
		}()
		keeping.Add(1)
		go func() {
			defer keeping.Done()
			p.keepAlive(keepCtx)
		}()
	}
	s.ready.Store(true)
	s.log.InfoContext(ctx, "delivery worker running", "partitions", len(s.partitions))

	<-ctx.Done()
	s.ready.Store(false)
	s.log.Info("delivery worker stopping: handing back deliveries not started, finishing attempts in flight")
	// Deliveries pulled but not started go back to the stream at once
	// (nakked without delay), and the pins are released so the next
	// worker takes the partitions now; attempts in flight stay ours (kept
	// alive) and are settled by this worker.
	pulling.Wait()
	for _, p := range s.partitions {
		p.stop()
	}
	s.releasePins()
	s.waitInFlight()
	s.deferrer.close()
	scheduling.Wait()
	stopKeep()
	keeping.Wait()
	s.log.Info("delivery worker stopped")
	return nil
}

// waitInFlight waits for the attempts in flight, up to ShutdownGrace; those
// still running after it are left to JetStream, which redelivers them after
// the ack wait.
func (s *Service) waitInFlight() {
	done := make(chan struct{})
	go func() {
		for _, p := range s.partitions {
			p.lanes.wait()
		}
		close(done)
	}()
	t := time.NewTimer(s.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("attempts still in flight after the shutdown grace; JetStream redelivers them after the ack wait", "grace", s.cfg.ShutdownGrace)
	}
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

// releasePins gives up this worker's partitions so the next worker takes
// them over at once.
func (s *Service) releasePins() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range s.partitions {
		if err := p.releasePin(ctx); err != nil {
			s.log.Warn("cannot release partition pin; it moves after the pinned TTL", "partition", p.index, "err", err)
		}
	}
}

// ensureStreams ensures DELIVERIES with its partition consumers, ATTEMPTS
// and OPERATIONAL, binds EVENTS, and returns the DELIVERIES stream, the
// partition count and the event source.
func ensureStreams(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (jetstream.Stream, int, eventSource, error) {
	stream, err := streams.EnsureDeliveries(ctx, js, cfg.Streams, cfg.AckWait)
	if err != nil {
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
