package config

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// state is the in-memory copy of the configuration, fed only by the KV
// watchers, so that every replica converges on what the buckets hold. It
// serves lists and the Watch stream. Objects in it are never modified after
// they are stored: an update replaces them, so readers may keep them.
type state struct {
	mu sync.RWMutex

	tenants    map[string]*configv1.Tenant
	eventTypes map[string]*configv1.EventType
	endpoints  map[string]map[string]*configv1.Endpoint // tenant → id → endpoint
	apiKeys    map[string]*apiKeyRecord                 // hash → record
	keyHashes  map[string]map[string]string             // tenant → key id → hash

	// applied is the newest revision applied per bucket; appliedCh is closed
	// and replaced whenever it grows, waking waitApplied.
	applied   map[string]uint64
	appliedCh chan struct{}
	running   bool
	loaded    chan struct{}
	isLoaded  bool

	subs      map[*subscriber]struct{}
	subBuffer int
}

// newState returns an empty state whose Watch subscribers may fall at most
// subBuffer changes behind before they are disconnected.
func newState(subBuffer int) *state {
	return &state{
		tenants:    map[string]*configv1.Tenant{},
		eventTypes: map[string]*configv1.EventType{},
		endpoints:  map[string]map[string]*configv1.Endpoint{},
		apiKeys:    map[string]*apiKeyRecord{},
		keyHashes:  map[string]map[string]string{},
		applied:    map[string]uint64{},
		appliedCh:  make(chan struct{}),
		loaded:     make(chan struct{}),
		subs:       map[*subscriber]struct{}{},
		subBuffer:  subBuffer,
	}
}

// setRunning records whether the watchers feed the state. While they do not,
// writers do not wait for their writes to be applied.
func (st *state) setRunning(running bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.running = running
	st.wakeLocked()
}

func (st *state) isRunning() bool {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.running
}

// markLoaded records that every watcher delivered its initial values.
func (st *state) markLoaded() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.isLoaded {
		st.isLoaded = true
		close(st.loaded)
	}
}

// waitLoaded blocks until the initial values are loaded or ctx ends.
func (st *state) waitLoaded(ctx context.Context) error {
	select {
	case <-st.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for configuration to load: %w", context.Cause(ctx))
	}
}

// waitApplied blocks until revision rev of bucket is applied, the watchers
// stop, or ctx ends. It returns at once while the watchers are not running.
func (st *state) waitApplied(ctx context.Context, bucket string, rev uint64) error {
	for {
		st.mu.RLock()
		done := !st.running || (st.isLoaded && st.applied[bucket] >= rev)
		ch := st.appliedCh
		st.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s revision %d: %w", bucket, rev, context.Cause(ctx))
		}
	}
}

// appliedRevision returns the newest revision applied from bucket.
func (st *state) appliedRevision(bucket string) uint64 {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.applied[bucket]
}

// advanceLocked records rev as applied for bucket and wakes waiters.
func (st *state) advanceLocked(bucket string, rev uint64) {
	if rev > st.applied[bucket] {
		st.applied[bucket] = rev
	}
	st.wakeLocked()
}

func (st *state) wakeLocked() {
	close(st.appliedCh)
	st.appliedCh = make(chan struct{})
}

// skip advances a bucket past a revision that could not be applied.
func (st *state) skip(bucket string, rev uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.advanceLocked(bucket, rev)
}

func (st *state) putTenant(t *configv1.Tenant) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.tenants[t.GetId()] = t
	st.publishLocked(configv1.Kind_KIND_TENANT, upsertChange(t))
	st.advanceLocked(BucketTenants, t.GetRevision())
}

func (st *state) deleteTenant(rev uint64, id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.tenants[id]; ok {
		delete(st.tenants, id)
		st.publishLocked(configv1.Kind_KIND_TENANT, deleteChange(&configv1.Tenant{Id: id}))
	}
	st.advanceLocked(BucketTenants, rev)
}

func (st *state) putEventType(et *configv1.EventType) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.eventTypes[et.GetName()] = et
	st.publishLocked(configv1.Kind_KIND_EVENT_TYPE, upsertChange(et))
	st.advanceLocked(BucketEventTypes, et.GetRevision())
}

func (st *state) deleteEventType(rev uint64, name string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.eventTypes[name]; ok {
		delete(st.eventTypes, name)
		st.publishLocked(configv1.Kind_KIND_EVENT_TYPE, deleteChange(&configv1.EventType{Name: name}))
	}
	st.advanceLocked(BucketEventTypes, rev)
}

func (st *state) putEndpoint(ep *configv1.Endpoint) {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := st.endpoints[ep.GetTenantId()]
	if m == nil {
		m = map[string]*configv1.Endpoint{}
		st.endpoints[ep.GetTenantId()] = m
	}
	m[ep.GetId()] = ep
	st.publishLocked(configv1.Kind_KIND_ENDPOINT, upsertChange(ep))
	st.advanceLocked(BucketEndpoints, ep.GetRevision())
}

func (st *state) deleteEndpoint(rev uint64, tenantID, id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if m := st.endpoints[tenantID]; m != nil {
		if _, ok := m[id]; ok {
			delete(m, id)
			if len(m) == 0 {
				delete(st.endpoints, tenantID)
			}
			st.publishLocked(configv1.Kind_KIND_ENDPOINT, deleteChange(&configv1.Endpoint{Id: id, TenantId: tenantID}))
		}
	}
	st.advanceLocked(BucketEndpoints, rev)
}

func (st *state) putAPIKey(rev uint64, hash string, rec *apiKeyRecord) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.apiKeys[hash] = rec
	m := st.keyHashes[rec.TenantID]
	if m == nil {
		m = map[string]string{}
		st.keyHashes[rec.TenantID] = m
	}
	m[rec.ID] = hash
	st.advanceLocked(BucketAPIKeys, rev)
}

func (st *state) deleteAPIKey(rev uint64, hash string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if rec, ok := st.apiKeys[hash]; ok {
		delete(st.apiKeys, hash)
		if m := st.keyHashes[rec.TenantID]; m != nil {
			delete(m, rec.ID)
			if len(m) == 0 {
				delete(st.keyHashes, rec.TenantID)
			}
		}
	}
	st.advanceLocked(BucketAPIKeys, rev)
}

// tenant returns a tenant by id.
func (st *state) tenant(id string) (*configv1.Tenant, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	t, ok := st.tenants[id]
	return t, ok
}

// tenantsPage returns up to limit tenants with ids after `after`, by id, and
// whether more follow.
func (st *state) tenantsPage(after string, limit int) ([]*configv1.Tenant, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return page(st.tenants, after, limit)
}

// allEventTypes returns the catalog, by name.
func (st *state) allEventTypes() []*configv1.EventType {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out, _ := page(st.eventTypes, "", len(st.eventTypes))
	return out
}

// endpoint returns a tenant's endpoint by id.
func (st *state) endpoint(tenantID, id string) (*configv1.Endpoint, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	ep, ok := st.endpoints[tenantID][id]
	return ep, ok
}

// endpointsPage returns up to limit of a tenant's endpoints with ids after
// `after`, by id, and whether more follow.
func (st *state) endpointsPage(tenantID, after string, limit int) ([]*configv1.Endpoint, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return page(st.endpoints[tenantID], after, limit)
}

// allEndpoints returns every endpoint of a tenant, by id.
func (st *state) allEndpoints(tenantID string) []*configv1.Endpoint {
	st.mu.RLock()
	defer st.mu.RUnlock()
	m := st.endpoints[tenantID]
	out, _ := page(m, "", len(m))
	return out
}

// apiKeysOf returns a tenant's API keys, by id.
func (st *state) apiKeysOf(tenantID string) []*apiKeyRecord {
	st.mu.RLock()
	defer st.mu.RUnlock()
	ids := st.keyHashes[tenantID]
	out := make([]*apiKeyRecord, 0, len(ids))
	for _, hash := range ids {
		out = append(out, st.apiKeys[hash])
	}
	slices.SortFunc(out, func(a, b *apiKeyRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// apiKeyHash returns the storage key of a tenant's API key.
func (st *state) apiKeyHash(tenantID, keyID string) (string, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	h, ok := st.keyHashes[tenantID][keyID]
	return h, ok
}

// page returns up to limit values of m whose keys sort after `after`, in key
// order, and whether more follow.
func page[T any](m map[string]T, after string, limit int) ([]T, bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out, more
}
