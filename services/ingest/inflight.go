package ingest

import (
	"context"
	"fmt"
	"sync"
)

// inflight caps the requests handled at once and lets shutdown wait for
// them. Once closed it admits nothing new.
type inflight struct {
	slots chan struct{}

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newInflight(capacity int) *inflight {
	return &inflight{slots: make(chan struct{}, capacity)}
}

// acquire waits for a free slot and admits one request, or returns false
// when closed. An admitted request must call release.
func (f *inflight) acquire() bool {
	f.slots <- struct{}{}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		<-f.slots
		return false
	}
	f.wg.Add(1)
	return true
}

// release ends an admitted request.
func (f *inflight) release() {
	<-f.slots
	f.wg.Done()
}

// closeAndWait stops admitting requests and waits until the admitted ones
// have ended, or ctx ends.
func (f *inflight) closeAndWait(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for in-flight requests: %w", context.Cause(ctx))
	}
}
