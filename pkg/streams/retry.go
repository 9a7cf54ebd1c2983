package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Delays of Retry.
const (
	retryFirstDelay = 250 * time.Millisecond
	retryMaxDelay   = 5 * time.Second
	// retryAttemptTimeout bounds one attempt, so a call that hangs on a
	// cluster without a leader is tried again.
	retryAttemptTimeout = 10 * time.Second
)

// ErrPartitionsChanged is wrapped by EnsureDeliveries' error when the
// configured partition count differs from the stream's.
var ErrPartitionsChanged = errors.New("the partition count is fixed per deployment")

// Permanent reports whether err from an Ensure function or a key-value
// bucket creation cannot pass on another try: the partition count changed,
// another stream captures the operational subjects, or JetStream refused the
// configuration itself (a 400 API error). Anything else — no JetStream
// responders, timeouts, a cluster without a leader, a lost connection — may.
func Permanent(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, ErrPartitionsChanged) || errors.Is(err, ErrOperationalCaptured) ||
		errors.As(err, &apiErr) && apiErr.Code == http.StatusBadRequest
}

// Retry calls f until it succeeds, fails permanently (see Permanent), or ctx
// ends, logging each failure as a warning and waiting between attempts (from
// 250 ms, doubling up to 5 s, ±20%). Services wrap the streams and buckets
// they need at start-up in it, so a slow or restarting NATS cluster delays
// their start instead of ending it. what names the step in logs and errors.
func Retry(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	delay := retryFirstDelay
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, retryAttemptTimeout)
		err := f(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("start-up step succeeded after retries", "step", what, "attempts", attempt)
			}
			return nil
		}
		if Permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: gave up after %d attempts: %w", what, attempt, errors.Join(context.Cause(ctx), err))
		}
		wait := delay + time.Duration(rand.Int64N(int64(delay)*2/5+1)) - delay/5
		log.Warn("start-up step failed; retrying", "step", what, "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: gave up after %d attempts: %w", what, attempt, errors.Join(context.Cause(ctx), err))
		case <-t.C:
		}
		delay = min(2*delay, retryMaxDelay)
	}
}
