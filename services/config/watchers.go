package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/pulsehooks/pulsehooks/pkg/secretbox"
)

// feed applies the entries of one bucket to the state.
type feed struct {
	b   bucket
	put func(e jetstream.KeyValueEntry) error
	del func(e jetstream.KeyValueEntry)
}

// runWatchers feeds the state from a KV watcher per bucket until ctx ends. It
// marks the state loaded once every watcher has delivered the bucket's
// current values. It returns nil when ctx ends and an error when a watcher
// fails, such as when an endpoint cannot be decrypted at start-up.
func (s *Service) runWatchers(ctx context.Context) error {
	st := s.state
	st.setRunning(true)
	defer st.setRunning(false)
	feeds := s.feeds()
	initial := make(chan struct{}, len(feeds))
	g, gctx := errgroup.WithContext(ctx)
	for _, f := range feeds {
		g.Go(func() error { return s.watchBucket(gctx, f, initial) })
	}
	g.Go(func() error {
		for range feeds {
			select {
			case <-initial:
			case <-gctx.Done():
				return nil
			}
		}
		st.markLoaded()
		return nil
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("config state: %w", err)
	}
	return nil
}

func (s *Service) feeds() []feed {
	st, store := s.state, s.store
	return []feed{
		{
			b: store.tenants,
			put: func(e jetstream.KeyValueEntry) error {
				t, err := tenantProto(e.Value(), e.Revision())
				if err == nil {
					st.putTenant(t)
				}
				return err
			},
			del: func(e jetstream.KeyValueEntry) { st.deleteTenant(e.Revision(), e.Key()) },
		},
		{
			b: store.eventTypes,
			put: func(e jetstream.KeyValueEntry) error {
				et, err := eventTypeProto(e.Value(), e.Revision())
				if err == nil {
					st.putEventType(et)
				}
				return err
			},
			del: func(e jetstream.KeyValueEntry) { st.deleteEventType(e.Revision(), e.Key()) },
		},
		{
			b: store.endpoints,
			put: func(e jetstream.KeyValueEntry) error {
				ep, err := store.decodeEndpoint(e.Value(), e.Revision())
				if err == nil {
					st.putEndpoint(ep)
				}
				return err
			},
			del: func(e jetstream.KeyValueEntry) {
				if tenantID, id, ok := splitEndpointKey(e.Key()); ok {
					st.deleteEndpoint(e.Revision(), tenantID, id)
					return
				}
				st.skip(BucketEndpoints, e.Revision())
			},
		},
		{
			b: store.apiKeys,
			put: func(e jetstream.KeyValueEntry) error {
				var rec apiKeyRecord
				if err := json.Unmarshal(e.Value(), &rec); err != nil {
					return fmt.Errorf("decode API key record: %w", err)
				}
				st.putAPIKey(e.Revision(), e.Key(), &rec)
				return nil
			},
			del: func(e jetstream.KeyValueEntry) { st.deleteAPIKey(e.Revision(), e.Key()) },
		},
	}
}

// watchBucket applies every entry of one bucket, signalling initial once the
// entries present at the start have been applied. After NATS reconnects it
// replaces its watcher by one resuming after the last applied revision, so
// changes flow again at once instead of after the ordered consumer notices
// missed heartbeats (up to 10 s).
func (s *Service) watchBucket(ctx context.Context, f feed, initial chan<- struct{}) error {
	name := f.b.kv.Bucket()
	reconnected := s.nc.StatusChanged(nats.CONNECTED)
	defer s.nc.RemoveStatusListener(reconnected)
	w, err := f.b.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch KV bucket %s: %w", name, err)
	}
	loading := true
	for {
		err := s.applyUpdates(ctx, f, w, &loading, initial, reconnected)
		_ = w.Stop()
		if err != nil || ctx.Err() != nil {
			return err
		}
		if w = s.resumeWatch(ctx, f); w == nil {
			return nil
		}
	}
}

// applyUpdates applies entries from w until ctx ends (nil), NATS reconnects
// (nil, with ctx still live), or applying fails.
func (s *Service) applyUpdates(ctx context.Context, f feed, w jetstream.KeyWatcher, loading *bool, initial chan<- struct{}, reconnected <-chan nats.Status) error {
	name := f.b.kv.Bucket()
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil
		case <-reconnected:
			return nil
		case entry, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil { // the watcher unsubscribes when ctx ends
					return nil
				}
				return fmt.Errorf("watcher of KV bucket %s stopped: NATS connection closed", name)
			}
			e = entry
		}
		if e == nil {
			if *loading {
				*loading = false
				initial <- struct{}{}
			}
			continue
		}
		if e.Operation() != jetstream.KeyValuePut {
			f.del(e)
			continue
		}
		err := f.put(e)
		if err == nil {
			continue
		}
		if *loading && (errors.Is(err, secretbox.ErrCorrupt) || errors.Is(err, secretbox.ErrUnknownKey)) {
			return fmt.Errorf("load %s/%s: %w", name, e.Key(), err)
		}
		s.log.ErrorContext(ctx, "config record skipped: cannot decode it", "bucket", name, "key", e.Key(), "revision", e.Revision(), "err", err)
		s.state.skip(name, e.Revision())
	}
}

// resumeWatch opens a watcher delivering every revision after the last one
// applied, retrying while JetStream recovers; nil when ctx ends first.
func (s *Service) resumeWatch(ctx context.Context, f feed) jetstream.KeyWatcher {
	name := f.b.kv.Bucket()
	backoff := 100 * time.Millisecond
	for {
		from := s.state.appliedRevision(name) + 1
		w, err := f.b.kv.WatchAll(ctx, jetstream.IncludeHistory(), jetstream.ResumeFromRevision(from))
		if err == nil {
			s.log.InfoContext(ctx, "KV watcher resumed after NATS reconnect", "bucket", name, "from_revision", from)
			return w
		}
		s.log.WarnContext(ctx, "cannot resume KV watcher yet", "bucket", name, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
