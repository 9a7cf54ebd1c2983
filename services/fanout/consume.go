package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/health"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// consume pulls events and hands each to one of Concurrency workers until ctx
// ends or the consumer stops, then shuts the workers down.
func (s *Service) consume(ctx context.Context) error {
	// The client buffers at most one batch per worker, so an event does not
	// wait long in the buffer while its AckWait runs.
	iter, err := s.consumer.Messages(jetstream.PullMaxMessages(s.cfg.Concurrency))
	if err != nil {
		return fmt.Errorf("fanout: consume %s/%s: %w", streams.Events, streams.FanoutConsumer, err)
	}
	stopIter := context.AfterFunc(ctx, func() {
		s.ready.Store(false)
		iter.Drain()
	})
	defer stopIter()

	// In-flight fan-outs outlive ctx by up to ShutdownTimeout.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	jobs := make(chan jetstream.Msg)
	var workers sync.WaitGroup
	for range s.cfg.Concurrency {
		w := newWorker(s)
		workers.Go(func() {
			for msg := range jobs {
				w.handle(workCtx, msg)
			}
		})
	}

	// The loop beats for every event it hands on; it is stuck when it has
	// not for the limit while the consumer has events not yet delivered.
	loop := s.live.Loop("fanout: consumer "+streams.FanoutConsumer+" on "+streams.Events, s.eventsPending)
	defer loop.Close()

	s.ready.Store(true)
	s.log.Info("consuming events", "consumer", streams.FanoutConsumer, "concurrency", s.cfg.Concurrency, "partitions", s.partitions)
	err = s.dispatch(ctx, iter, jobs, loop)
	s.ready.Store(false)
	iter.Stop()
	close(jobs)
	s.drainWorkers(&workers, cancelWork)
	return err
}

// dispatch hands events from iter to the workers until iter is closed. Events
// it takes once ctx has ended (still buffered when the iterator was drained)
// are handed back for immediate redelivery to another replica.
func (s *Service) dispatch(ctx context.Context, iter jetstream.MessagesContext, jobs chan<- jetstream.Msg, loop *health.Loop) error {
	for {
		loop.Beat()
		msg, err := iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("fanout: consumer %s stopped: %w", streams.FanoutConsumer, err)
			}
			s.log.Warn("pulling events", "err", err)
			continue
		}
		if ctx.Err() != nil {
			s.handBack(msg)
			continue
		}
		select {
		case jobs <- msg:
		case <-ctx.Done():
			s.handBack(msg)
		}
	}
}

// eventsPending reports whether the fanout consumer has events it has not
// delivered to any replica yet and could deliver to this one (one consumer
// info request). At MaxAckPending the server sends nothing to anyone: then
// the replicas holding the events are the stuck ones, not this one.
func (s *Service) eventsPending(ctx context.Context) (bool, error) {
	info, err := s.consumer.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("consumer info %s: %w", streams.FanoutConsumer, err)
	}
	full := info.Config.MaxAckPending > 0 && info.NumAckPending >= info.Config.MaxAckPending
	return info.NumPending > 0 && !full, nil
}

// drainWorkers waits for the workers to finish their fan-outs, cancelling
// them after ShutdownTimeout (they then hand their events back).
func (s *Service) drainWorkers(workers *sync.WaitGroup, cancelWork context.CancelFunc) {
	done := make(chan struct{})
	go func() {
		workers.Wait()
		close(done)
	}()
	timer := time.NewTimer(s.cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("in-flight fan-outs not finished at shutdown, handing them back", "timeout", s.cfg.ShutdownTimeout)
		cancelWork()
		<-done
	}
}

// handBack asks the server to redeliver msg at once, to any replica.
func (s *Service) handBack(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		s.log.Warn("hand back event at shutdown, it will be redelivered after AckWait", "subject", msg.Subject(), "err", err)
	}
}
