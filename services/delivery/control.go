package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/pulsehooks/pulsehooks/pkg/configwatch"
	"github.com/pulsehooks/pulsehooks/pkg/deliverycontrol"
	"github.com/pulsehooks/pulsehooks/pkg/retryq"
)

const (
	// endpointResetSubject is where the worker that answered a retry-now
	// request tells every worker (a plain subscription, not the queue
	// group) to forget that the endpoint is failing, so that the one
	// holding its partition stops putting new deliveries off to the old
	// back-off. The message is the endpoint id.
	endpointResetSubject = "pulsehooks.control.endpoint_reset"
	// controlTimeout bounds the handling of one control request.
	controlTimeout = 30 * time.Second
	// controlWorkers is how many control requests a worker handles at once.
	controlWorkers = 2
	// controlBuffer bounds the control requests waiting to be handled.
	controlBuffer = 64
)

// control answers the control requests of pkg/deliverycontrol in the
// delivery workers' queue group, so one worker answers each.
type control struct {
	nc        *nats.Conn
	log       *slog.Logger
	endpoints *configwatch.View
	queue     *retryq.Queue
	streaks   streaks
	states    *endpointStates
	// kick wakes this worker's scheduler for items due at a time.
	kick func(time.Time)

	wg       sync.WaitGroup
	requests *nats.Subscription
	resets   *nats.Subscription
}

// start subscribes to the control subjects and answers requests until ctx
// ends; stop then waits for it. The subscriptions are made (and flushed to
// the server) before start returns.
func (c *control) start(ctx context.Context) error {
	ch := make(chan *nats.Msg, controlBuffer)
	var err error
	if c.requests, err = c.nc.ChanQueueSubscribe(deliverycontrol.RetryNowSubject, deliverycontrol.Queue, ch); err != nil {
		return fmt.Errorf("subscribe to %s: %w", deliverycontrol.RetryNowSubject, err)
	}
	if c.resets, err = c.nc.Subscribe(endpointResetSubject, func(m *nats.Msg) {
		c.states.succeeded(string(m.Data), time.Now())
	}); err != nil {
		_ = c.requests.Unsubscribe()
		return fmt.Errorf("subscribe to %s: %w", endpointResetSubject, err)
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		c.log.WarnContext(ctx, "control subscriptions not confirmed by NATS yet", "err", err)
	}
	for range controlWorkers {
		c.wg.Go(func() {
			for {
				select {
				case m := <-ch:
					c.handle(ctx, m)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	c.wg.Go(func() {
		<-ctx.Done()
		// No new requests come here (the server gives them to the
		// other workers); those already received are answered.
		_ = c.requests.Unsubscribe()
		_ = c.resets.Unsubscribe()
		for {
			select {
			case m := <-ch:
				c.handle(context.WithoutCancel(ctx), m)
			default:
				return
			}
		}
	})
	return nil
}

// stop waits for start's goroutines, which end with its ctx.
func (c *control) stop() { c.wg.Wait() }

// handle answers one control request.
func (c *control) handle(ctx context.Context, m *nats.Msg) {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	var req deliverycontrol.RetryNowRequest
	var reply deliverycontrol.RetryNowReply
	if err := json.Unmarshal(m.Data, &req); err != nil {
		reply.Error = &deliverycontrol.Error{Code: deliverycontrol.CodeInvalid, Message: "a retry-now request is JSON {\"tenant_id\", \"endpoint_id\"}: " + err.Error()}
	} else {
		reply.Queued, reply.Error = c.retryNow(ctx, req)
	}
	data, err := json.Marshal(reply)
	if err != nil {
		c.log.ErrorContext(ctx, "retry-now reply not encoded", "err", err)
		return
	}
	if m.Reply == "" {
		return
	}
	if err := m.Respond(data); err != nil {
		c.log.WarnContext(ctx, "retry-now reply not sent", "endpoint_id", req.EndpointID, "err", err)
	}
}

// retryNow makes every waiting delivery of the request's endpoint due now:
// it ends the endpoint's run of failures (the Redis failure run, and every
// worker's memory that it is failing, so new deliveries are tried rather
// than put off), then moves the endpoint's items in its partition's
// schedule that no scheduler holds to now, and wakes the scheduler. Items
// holding a rate-limit slot keep their slot's time: retry now does not
// lift the rate limit. It returns how many items are due now.
func (c *control) retryNow(ctx context.Context, req deliverycontrol.RetryNowRequest) (int, *deliverycontrol.Error) {
	if req.TenantID == "" || req.EndpointID == "" {
		return 0, &deliverycontrol.Error{Code: deliverycontrol.CodeInvalid, Message: "a retry-now request needs tenant_id and endpoint_id"}
	}
	ep, ok := c.endpoints.Endpoint(req.EndpointID)
	if !ok || ep.GetTenantId() != req.TenantID {
		return 0, &deliverycontrol.Error{Code: deliverycontrol.CodeNotFound, Message: fmt.Sprintf("the delivery workers know no endpoint %s of tenant %s", req.EndpointID, req.TenantID)}
	}
	if !ep.GetEnabled() {
		return 0, &deliverycontrol.Error{Code: deliverycontrol.CodeDisabled, Message: "the endpoint is disabled, so its deliveries are dropped, not sent; enable it first"}
	}
	log := c.log.With("tenant_id", req.TenantID, "endpoint_id", req.EndpointID)
	if err := c.streaks.clear(ctx, ep.GetId()); err != nil {
		log.WarnContext(ctx, "retry now: failure run not cleared", "err", err)
		return 0, unavailable(err)
	}
	now := time.Now()
	c.states.succeeded(ep.GetId(), now)
	if err := c.nc.Publish(endpointResetSubject, []byte(ep.GetId())); err != nil {
		log.WarnContext(ctx, "retry now: other workers not told the endpoint is no longer failing", "err", err)
	}
	n, err := c.queue.DueNow(ctx, ep.GetId(), now, func(it retryq.Item) bool { return it.Flags&flagRateReserved != 0 })
	if err != nil {
		log.WarnContext(ctx, "retry now: schedule not updated", "err", err, "queued", n)
		return 0, unavailable(err)
	}
	c.kick(now)
	log.InfoContext(ctx, "retry now: waiting deliveries made due", "queued", n)
	return n, nil
}

// unavailable is the reply error for a schedule that could not be reached.
func unavailable(err error) *deliverycontrol.Error {
	msg := "the retry schedule (Redis) is unavailable; try again shortly"
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "the retry schedule (Redis) did not answer in time; try again shortly"
	}
	return &deliverycontrol.Error{Code: deliverycontrol.CodeUnavailable, Message: msg}
}
