package fanout

import (
	"errors"
	"fmt"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
)

// Defaults of the Config fields left at their zero value.
const (
	DefaultConcurrency     = 64
	DefaultAckWait         = 30 * time.Second
	DefaultDeliveryAckWait = streams.DefaultDeliveryAckWait
	DefaultMaxAckPending   = 1024
	DefaultPublishWindow   = 256
	DefaultPendingBytes    = 64 << 20
	DefaultPublishTimeout  = 10 * time.Second
	DefaultRetryDelay      = time.Second
	DefaultShutdownTimeout = 10 * time.Second

	// minAckWait is the shortest AckWait accepted: a fan-out renews its AckWait
	// every third of it.
	minAckWait = 100 * time.Millisecond
	// maxRetryDelay caps the growing delay before a failed fan-out is redone.
	maxRetryDelay = 30 * time.Second
)

// Config holds the settings of the fanout service. Zero values take the
// defaults above.
type Config struct {
	// Streams are the deployment settings of the streams; the delivery service
	// must be given the same ones.
	Streams streams.Options
	// Concurrency is the number of events fanned out at once by one replica.
	Concurrency int
	// AckWait is how long the server waits for the ack of an event before it
	// redelivers it. Long fan-outs report progress so it does not expire.
	AckWait time.Duration
	// DeliveryAckWait is the AckWait of the DELIVERIES partition consumers,
	// passed to streams.EnsureDeliveries; it must match the delivery service's.
	DeliveryAckWait time.Duration
	// MaxAckPending bounds the events handed out and not yet acked across all
	// replicas (the consumer is shared, so every replica must use the same value).
	MaxAckPending int
	// PublishWindow is the most deliveries of one event awaiting their store ack.
	PublishWindow int
	// PendingBytes bounds the bytes of deliveries awaiting their store ack across
	// the replica's workers; large payloads get a smaller window.
	PendingBytes int
	// PublishTimeout is how long a delivery publish waits for its store ack
	// before the fan-out counts as failed.
	PublishTimeout time.Duration
	// RetryDelay is the delay before a failed fan-out is redone; it grows with
	// each redelivery of the event, up to 30 s.
	RetryDelay time.Duration
	// ShutdownTimeout is how long Run lets in-flight fan-outs finish after its
	// context ends; unfinished events are handed back for redelivery.
	ShutdownTimeout time.Duration
}

func (c Config) withDefaults() Config {
	setDefault(&c.Concurrency, DefaultConcurrency)
	setDefault(&c.AckWait, DefaultAckWait)
	setDefault(&c.DeliveryAckWait, DefaultDeliveryAckWait)
	setDefault(&c.MaxAckPending, DefaultMaxAckPending)
	setDefault(&c.PublishWindow, DefaultPublishWindow)
	setDefault(&c.PendingBytes, DefaultPendingBytes)
	setDefault(&c.PublishTimeout, DefaultPublishTimeout)
	setDefault(&c.RetryDelay, DefaultRetryDelay)
	setDefault(&c.ShutdownTimeout, DefaultShutdownTimeout)
	return c
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// validate reports settings that cannot work; it expects defaults applied.
func (c Config) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		bad  bool
	}{
		{"Concurrency", c.Concurrency < 0},
		{"AckWait", c.AckWait < minAckWait},
		{"DeliveryAckWait", c.DeliveryAckWait < minAckWait},
		{"MaxAckPending", c.MaxAckPending < 0},
		{"PublishWindow", c.PublishWindow < 0},
		{"PendingBytes", c.PendingBytes < 0},
		{"PublishTimeout", c.PublishTimeout < 0},
		{"RetryDelay", c.RetryDelay < 0},
		{"ShutdownTimeout", c.ShutdownTimeout < 0},
	} {
		if f.bad {
			errs = append(errs, fmt.Errorf("%s out of range", f.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fanout configuration: %w", err)
	}
	return nil
}

// retryDelay is the delay before an event whose fan-out failed is redone:
// RetryDelay, doubled for each earlier delivery of the event, at most 30 s.
func (c Config) retryDelay(numDelivered uint64) time.Duration {
	d := c.RetryDelay
	for i := uint64(1); i < numDelivered && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// window is how many deliveries of msgSize bytes one worker keeps awaiting
// their store ack.
func (c Config) window(msgSize int) int {
	perWorker := c.PendingBytes / c.Concurrency
	return max(1, min(c.PublishWindow, perWorker/max(msgSize, 1)))
}
