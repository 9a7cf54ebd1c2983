package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/relayurl"
	"github.com/pulsehooks/pulsehooks/pkg/secretbox"
	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
)

// Names of the JetStream KV buckets the config service keeps its data in.
const (
	BucketTenants      = "ph_tenants"
	BucketAPIKeys      = "ph_apikeys"
	BucketEndpoints    = "ph_endpoints"
	BucketEventTypes   = "ph_event_types"
	BucketPortalTokens = "ph_portal_tokens"
	BucketSessions     = "ph_sessions"
	BucketMeta         = "ph_meta"
)

// applyTimeout bounds how long a write waits for this replica's in-memory
// state to show it. The write is durable either way; the wait gives
// read-your-writes on this replica and prompt Watch notifications.
const applyTimeout = 5 * time.Second

// conflictRetries is how often a read-modify-write is retried when another
// writer changed the same key in between.
const conflictRetries = 5

// bucket is a KV bucket and its backing stream (for its last revision).
type bucket struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
}

// Store reads and writes the configuration: tenants, API keys, the event-type
// catalog, endpoints, portal links and sessions. Writes go to the KV buckets;
// lists are served from the service's in-memory state, which the KV watchers
// of Run keep current, so list methods wait until Run has loaded it.
type Store struct {
	tenants, apiKeys, endpoints, eventTypes, portalTokens, sessions, meta bucket
	// usage holds the per-tenant endpoint counters (quotas.go).
	usage   bucket
	usageMu usageLocks
	quotas  Quotas

	box        *secretbox.Box
	state      *state
	policy     ssrf.Policy
	publicURL  *url.URL
	relayBase  relayurl.Base
	linkTTL    time.Duration
	sessionTTL time.Duration
	log        *slog.Logger
	now        func() time.Time
}

// bucketSpec describes one bucket to create.
type bucketSpec struct {
	dst         *bucket
	name        string
	description string
	history     uint8
	ttl         time.Duration
}

// openStore creates or updates every bucket (idempotent) and binds to them.
func openStore(ctx context.Context, js jetstream.JetStream, cfg Config, st *state, box *secretbox.Box, log *slog.Logger) (*Store, error) {
	s := &Store{
		box:        box,
		state:      st,
		policy:     ssrf.Policy{Allow: cfg.AllowNetworks},
		linkTTL:    cfg.PortalLinkTTL,
		sessionTTL: cfg.SessionTTL,
		quotas:     cfg.Quotas,
		log:        log,
		now:        time.Now,
	}
	specs := []bucketSpec{
		{&s.tenants, BucketTenants, "pulsehooks tenants", 5, 0},
		{&s.apiKeys, BucketAPIKeys, "pulsehooks API keys by SHA-256 of the key", 5, 0},
		{&s.endpoints, BucketEndpoints, "pulsehooks endpoints by <tenant>.<endpoint>", 5, 0},
		{&s.eventTypes, BucketEventTypes, "pulsehooks event-type catalog", 5, 0},
		{&s.portalTokens, BucketPortalTokens, "pulsehooks single-use portal link tokens by SHA-256", 1, cfg.PortalLinkTTL},
		{&s.sessions, BucketSessions, "pulsehooks portal sessions by SHA-256 of the session id", 1, cfg.SessionTTL},
		{&s.meta, BucketMeta, "pulsehooks config service markers", 1, 0},
		{&s.usage, BucketUsage, "pulsehooks per-tenant endpoint counters for quotas", 1, 0},
	}
	for _, sp := range specs {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      sp.name,
			Description: sp.description,
			History:     sp.history,
			TTL:         sp.ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("create or update KV bucket %s: %w", sp.name, err)
		}
		stream, err := js.Stream(ctx, "KV_"+sp.name)
		if err != nil {
			return nil, fmt.Errorf("bind stream of KV bucket %s: %w", sp.name, err)
		}
		*sp.dst = bucket{kv: kv, stream: stream}
	}
	return s, nil
}

// getJSON reads key into v; found is false when the key does not exist or was
// deleted.
func getJSON(ctx context.Context, b bucket, key string, v any) (rev uint64, found bool, err error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read %s/%s: %w", b.kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, false, fmt.Errorf("decode %s/%s: %w", b.kv.Bucket(), key, err)
	}
	return e.Revision(), true, nil
}

// lastRevision returns the newest revision in the bucket, used to wait for a
// delete (whose revision the KV API does not return) to be applied.
func (b bucket) lastRevision(ctx context.Context) (uint64, error) {
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read last revision of %s: %w", b.kv.Bucket(), err)
	}
	return info.State.LastSeq, nil
}

// awaitApplied waits until this replica's state has applied revision rev of
// bucket b. A write is durable before this is called, so a slow watcher is
// logged, not reported to the caller.
func (s *Store) awaitApplied(ctx context.Context, b bucket, rev uint64) {
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	if err := s.state.waitApplied(ctx, b.kv.Bucket(), rev); err != nil {
		s.log.WarnContext(ctx, "write stored but not yet visible in this replica's state", "bucket", b.kv.Bucket(), "revision", rev, "err", err)
	}
}

// awaitDeleted waits until the state has applied a delete in bucket b.
func (s *Store) awaitDeleted(ctx context.Context, b bucket) {
	if !s.state.isRunning() {
		return
	}
	rev, err := b.lastRevision(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "delete stored; cannot wait for this replica's state to show it", "err", err)
		return
	}
	s.awaitApplied(ctx, b, rev)
}

// retryOnConflict runs f again while it fails because another writer changed
// the key it read; after conflictRetries attempts it reports ErrConflict.
func retryOnConflict(ctx context.Context, what string, f func() error) error {
	for range conflictRetries {
		err := f()
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
	return fmt.Errorf("%s: changed concurrently %d times, try again: %w", what, conflictRetries, ErrConflict)
}

// marshal encodes a record; records are plain data, so this cannot fail in
// practice, but the error is still reported.
func marshal(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	return b, nil
}
