// Package configwatch keeps an in-memory copy of the configuration a service
// needs, fed by the config service's Watch stream: a snapshot, then every
// change. Lookups never make a network call.
package configwatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// View is an in-memory copy of tenants, event types and endpoints. It is safe
// for concurrent use. Objects it returns are shared and must not be modified.
type View struct {
	client configv1.ConfigServiceClient
	kinds  []configv1.Kind
	log    *slog.Logger

	readyOnce sync.Once
	ready     chan struct{}

	mu    sync.RWMutex
	state *state
	// changed is closed and replaced after every applied batch.
	changed chan struct{}
}

type state struct {
	tenants    map[string]*configv1.Tenant
	eventTypes map[string]*configv1.EventType
	endpoints  map[string]*configv1.Endpoint
	// byTenant indexes enabled and disabled endpoints per tenant.
	byTenant map[string]*tenantIndex
}

// tenantIndex is the fan-out index of one tenant; its slices are rebuilt, never
// modified, so readers may keep them.
type tenantIndex struct {
	endpoints map[string]*configv1.Endpoint
	all       []*configv1.Endpoint            // enabled, empty filter
	byType    map[string][]*configv1.Endpoint // enabled, filter lists the type
	sorted    []*configv1.Endpoint            // every endpoint, by id
}

func newState() *state {
	return &state{
		tenants:    map[string]*configv1.Tenant{},
		eventTypes: map[string]*configv1.EventType{},
		endpoints:  map[string]*configv1.Endpoint{},
		byTenant:   map[string]*tenantIndex{},
	}
}

// New returns a View of the given kinds (none means all). Call Run to fill it.
func New(client configv1.ConfigServiceClient, log *slog.Logger, kinds ...configv1.Kind) *View {
	return &View{
		client:  client,
		kinds:   kinds,
		log:     log,
		ready:   make(chan struct{}),
		state:   newState(),
		changed: make(chan struct{}),
	}
}

// Run watches until ctx ends, reconnecting with backoff after errors. Each new
// Watch starts with a snapshot that replaces the view when it is complete.
func (v *View) Run(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	for {
		err := v.watchOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		v.log.Warn("config watch interrupted, reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

func (v *View) watchOnce(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := v.client.Watch(ctx, &configv1.WatchRequest{Kinds: v.kinds})
	if err != nil {
		return fmt.Errorf("open watch: %w", err)
	}
	snap := newState()
	var seq uint64
	inSnapshot := true
	for {
		resp, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("receive watch batch: %w", err)
		}
		if resp.GetSequence() != seq+1 {
			return fmt.Errorf("watch batch %d after %d: gap in the stream", resp.GetSequence(), seq)
		}
		seq = resp.GetSequence()
		if inSnapshot {
			for _, c := range resp.GetChanges() {
				snap.apply(c, nil)
			}
			if !resp.GetSnapshotComplete() {
				continue
			}
			for tenant := range snap.byTenant {
				snap.reindex(tenant)
			}
			inSnapshot = false
			v.mu.Lock()
			v.state = snap
			v.notifyLocked()
			v.mu.Unlock()
			v.readyOnce.Do(func() { close(v.ready) })
			v.log.Info("config snapshot loaded", "tenants", len(snap.tenants), "event_types", len(snap.eventTypes), "endpoints", len(snap.endpoints))
			continue
		}
		dirty := map[string]struct{}{}
		v.mu.Lock()
		for _, c := range resp.GetChanges() {
			v.state.apply(c, dirty)
		}
		// Once per batch, not per change: a batch of 1,000 endpoint changes
		// for one tenant re-sorts that tenant once.
		for tenant := range dirty {
			v.state.reindex(tenant)
		}
		v.notifyLocked()
		v.mu.Unlock()
	}
}

func (v *View) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// apply applies one change. The fan-out index of each tenant whose endpoints
// changed is rebuilt by the caller: apply adds the tenant to dirty (nil during
// a snapshot, which indexes every tenant once at its end).
func (s *state) apply(c *configv1.Change, dirty map[string]struct{}) {
	mark := func(tenant string) {
		if dirty != nil {
			dirty[tenant] = struct{}{}
		}
	}
	del := c.GetOp() == configv1.Op_OP_DELETE
	switch o := c.GetObject().(type) {
	case *configv1.Change_Tenant:
		if del {
			delete(s.tenants, o.Tenant.GetId())
		} else {
			s.tenants[o.Tenant.GetId()] = o.Tenant
		}
	case *configv1.Change_EventType:
		if del {
			delete(s.eventTypes, o.EventType.GetName())
		} else {
			s.eventTypes[o.EventType.GetName()] = o.EventType
		}
	case *configv1.Change_Endpoint:
		ep := o.Endpoint
		tenant := ep.GetTenantId()
		if old, ok := s.endpoints[ep.GetId()]; ok && old.GetTenantId() != tenant {
			if ti := s.byTenant[old.GetTenantId()]; ti != nil {
				delete(ti.endpoints, ep.GetId())
				mark(old.GetTenantId())
			}
		}
		ti := s.byTenant[tenant]
		if ti == nil {
			ti = &tenantIndex{endpoints: map[string]*configv1.Endpoint{}}
			s.byTenant[tenant] = ti
		}
		if del {
			delete(s.endpoints, ep.GetId())
			delete(ti.endpoints, ep.GetId())
		} else {
			s.endpoints[ep.GetId()] = ep
			ti.endpoints[ep.GetId()] = ep
		}
		mark(tenant)
	}
}

func (s *state) reindex(tenant string) {
	ti := s.byTenant[tenant]
	if ti == nil {
		return
	}
	if len(ti.endpoints) == 0 {
		delete(s.byTenant, tenant)
		return
	}
	sorted := make([]*configv1.Endpoint, 0, len(ti.endpoints))
	for _, ep := range ti.endpoints {
		sorted = append(sorted, ep)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].GetId() < sorted[j].GetId() })
	var all []*configv1.Endpoint
	byType := map[string][]*configv1.Endpoint{}
	for _, ep := range sorted {
		if !ep.GetEnabled() {
			continue
		}
		if len(ep.GetEventTypes()) == 0 {
			all = append(all, ep)
			continue
		}
		for _, et := range ep.GetEventTypes() {
			byType[et] = append(byType[et], ep)
		}
	}
	ti.sorted, ti.all, ti.byType = sorted, all, byType
}

// Ready is closed once the first snapshot is loaded.
func (v *View) Ready() <-chan struct{} { return v.ready }

// WaitReady blocks until the first snapshot is loaded or ctx ends.
func (v *View) WaitReady(ctx context.Context) error {
	select {
	case <-v.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for config snapshot: %w", context.Cause(ctx))
	}
}

// Changed returns a channel closed at the next applied change or snapshot.
func (v *View) Changed() <-chan struct{} {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.changed
}

// Tenant returns a tenant by id.
func (v *View) Tenant(id string) (*configv1.Tenant, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	t, ok := v.state.tenants[id]
	return t, ok
}

// EventType returns a catalog entry by name.
func (v *View) EventType(name string) (*configv1.EventType, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	et, ok := v.state.eventTypes[name]
	return et, ok
}

// EventTypes returns every catalog entry, in no particular order.
func (v *View) EventTypes() []*configv1.EventType {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*configv1.EventType, 0, len(v.state.eventTypes))
	for _, et := range v.state.eventTypes {
		out = append(out, et)
	}
	return out
}

// Endpoint returns an endpoint by id.
func (v *View) Endpoint(id string) (*configv1.Endpoint, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ep, ok := v.state.endpoints[id]
	return ep, ok
}

// Endpoints returns every endpoint of a tenant, sorted by id.
func (v *View) Endpoints(tenantID string) []*configv1.Endpoint {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if ti := v.state.byTenant[tenantID]; ti != nil {
		return ti.sorted
	}
	return nil
}

// Match returns the enabled endpoints of a tenant that subscribe to an event
// type: those whose filter lists it and those with an empty filter. The
// result is shared and must not be modified; its two parts are returned
// separately so that no slice is built per event.
func (v *View) Match(tenantID, eventType string) (filtered, all []*configv1.Endpoint) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	ti := v.state.byTenant[tenantID]
	if ti == nil {
		return nil, nil
	}
	return ti.byType[eventType], ti.all
}

// Counts returns how many tenants, event types and endpoints the view holds.
func (v *View) Counts() (tenants, eventTypes, endpoints int) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.state.tenants), len(v.state.eventTypes), len(v.state.endpoints)
}

// ErrNotReady is returned by callers that need a loaded view before serving.
var ErrNotReady = errors.New("configuration snapshot not loaded yet")
