package metrics

import (
	"context"
	"sync"
	"time"
)

// ServerReadInterval is how often at most a gauge read from a server (Redis,
// JetStream) is read again, however often it is scraped.
const ServerReadInterval = 15 * time.Second

// readTimeout bounds one read of a Cache.
const readTimeout = 5 * time.Second

// Cache holds a value read from a server, read again at most once per
// interval, for observable gauges whose callbacks run at every collection.
type Cache[T any] struct {
	interval time.Duration
	read     func(context.Context) (T, error)

	mu  sync.Mutex
	at  time.Time
	val T
	ok  bool
	err error
}

// NewCache returns a cache of what read returns, read again at most once
// per interval.
func NewCache[T any](interval time.Duration, read func(context.Context) (T, error)) *Cache[T] {
	return &Cache[T]{interval: interval, read: read}
}

// Get returns the value, reading it first if the last read is older than
// the interval. After a failed read it returns the error, and no value,
// until the next read: a gauge that cannot be read is absent rather than
// stale.
func (c *Cache[T]) Get(ctx context.Context) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); c.at.IsZero() || now.Sub(c.at) >= c.interval {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		v, err := c.read(rctx)
		cancel()
		c.at, c.val, c.ok, c.err = now, v, err == nil, err
	}
	if !c.ok {
		var zero T
		return zero, c.err
	}
	return c.val, nil
}
