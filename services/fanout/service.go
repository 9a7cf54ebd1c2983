// Package fanout turns each event stored in the EVENTS stream into one
// delivery per matching endpoint in the DELIVERIES stream.
//
// Every replica pulls from one shared durable consumer, matches events
// against an in-memory index of the configuration kept fresh by the config
// service's Watch stream, publishes the deliveries asynchronously with
// Nats-Msg-Id = <message id>.<endpoint id> (so redoing a fan-out stores each
// delivery once), and acks an event only after every delivery is stored.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pulsehooks/pulsehooks/pkg/configwatch"
	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// tracerName names the tracer of the fanout spans.
const tracerName = "github.com/pulsehooks/pulsehooks/services/fanout"

// Deps are the connections and observability the service uses.
type Deps struct {
	// NATS is the connection to the NATS cluster; the caller closes it.
	NATS *nats.Conn
	// Config is the gRPC client of the config service, used for its Watch stream.
	Config configv1.ConfigServiceClient
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// TracerProvider makes the fanout spans; nil disables tracing.
	TracerProvider trace.TracerProvider
	// Liveness, if set, has the consume loop registered in it, so /healthz
	// fails while the loop is stuck with events pending.
	Liveness *health.Liveness
	// MeterProvider makes the fanout instruments; nil records none.
	MeterProvider metric.MeterProvider
}

// Service is the fanout service. Create it with New, then call Run once.
type Service struct {
	cfg        Config
	log        *slog.Logger
	tracer     trace.Tracer
	js         jetstream.JetStream
	consumer   jetstream.Consumer
	view       *configwatch.View
	partitions int
	live       *health.Liveness
	meters     *meters
	ready      atomic.Bool
}

// New ensures the EVENTS and DELIVERIES streams and the shared fanout
// consumer, and returns the service ready to Run. It starts no goroutines.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.NATS == nil {
		return nil, errors.New("fanout: Deps.NATS is required")
	}
	if deps.Config == nil {
		return nil, errors.New("fanout: Deps.Config is required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tp := deps.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	js, err := jetstream.New(deps.NATS,
		// Each worker keeps at most PublishWindow publishes pending, so
		// publishing never stalls on the client-wide limit.
		jetstream.WithPublishAsyncMaxPending(cfg.Concurrency*cfg.PublishWindow),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("fanout: jetstream context: %w", err)
	}
	// JetStream may be slow to come up (a cluster electing leaders, a
	// restarting server): wait for it rather than exit.
	var (
		partitions int
		consumer   jetstream.Consumer
	)
	err = streams.Retry(ctx, log, "ensure streams and consumer "+streams.FanoutConsumer, func(ctx context.Context) error {
		var err error
		partitions, consumer, err = ensureStreams(ctx, js, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	ms, err := newMeters(metrics.Meter(deps.MeterProvider, meterName), consumer)
	if err != nil {
		return nil, err
	}
	return &Service{
		meters:     ms,
		cfg:        cfg,
		log:        log,
		tracer:     tp.Tracer(tracerName),
		js:         js,
		consumer:   consumer,
		view:       configwatch.New(deps.Config, log, configv1.Kind_KIND_TENANT, configv1.Kind_KIND_ENDPOINT),
		partitions: partitions,
		live:       deps.Liveness,
	}, nil
}

// Run watches the configuration and, once its first snapshot is loaded,
// fans out events until ctx ends. It then stops fetching, lets in-flight
// fan-outs finish for up to Config.ShutdownTimeout, hands back the rest for
// redelivery and returns nil. It returns an error only when consuming stops
// for another reason (the consumer was deleted, the connection closed).
func (s *Service) Run(ctx context.Context) error {
	viewCtx, stopView := context.WithCancel(ctx)
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		if err := s.view.Run(viewCtx); err != nil {
			s.log.Error("config watch stopped", "err", err)
		}
	}()
	defer func() {
		stopView()
		<-viewDone
	}()

	// Consuming before the snapshot would fan events out to nobody.
	if err := s.view.WaitReady(ctx); err != nil {
		s.log.Info("stopped before the configuration snapshot was loaded")
		return nil
	}
	return s.consume(ctx)
}

// Ready reports whether the configuration snapshot is loaded and events are
// being consumed; it turns false as soon as shutdown starts.
func (s *Service) Ready() bool { return s.ready.Load() }

// ensureStreams ensures EVENTS, DELIVERIES, STATES and the fanout consumer, and
// returns the partition count and the consumer.
func ensureStreams(ctx context.Context, js jetstream.JetStream, cfg Config) (int, jetstream.Consumer, error) {
	events, err := streams.EnsureEvents(ctx, js, cfg.Streams)
	if err != nil {
		return 0, nil, err
	}
	if _, err := streams.EnsureDeliveries(ctx, js, cfg.Streams, cfg.DeliveryAckWait); err != nil {
		return 0, nil, err
	}
	if _, err := streams.EnsureStates(ctx, js, cfg.Streams); err != nil {
		return 0, nil, err
	}
	partitions, err := streams.PartitionsOf(ctx, js)
	if err != nil {
		return 0, nil, err
	}
	consumer, err := events.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       streams.FanoutConsumer,
		Description:   "fanout: one delivery per matching endpoint, shared by all fanout replicas",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxAckPending,
	})
	if err != nil {
		return 0, nil, fmt.Errorf("ensure consumer %s on %s: %w", streams.FanoutConsumer, streams.Events, err)
	}
	return partitions, consumer, nil
}
