package config

import (
	"errors"
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// errTooSlow is the reason a Watch subscriber is disconnected when its
// buffer is full: the client reconnects and starts with a fresh snapshot.
var errTooSlow = errors.New("watch subscriber fell too far behind and was disconnected; watch again for a fresh snapshot")

// subscriber is one Watch stream's view of the changes. The state never
// blocks on it: when ch is full the subscriber is dropped with errTooSlow.
type subscriber struct {
	kinds map[configv1.Kind]bool
	ch    chan *configv1.Change
	// done is closed when the state drops the subscriber; err says why and
	// is written before done is closed.
	done chan struct{}
	err  error
}

// subscribe registers a subscriber for kinds (all when empty) and returns a
// snapshot of those kinds taken atomically with the registration, so the
// subscriber sees every later change exactly once.
func (st *state) subscribe(kinds []configv1.Kind) ([]*configv1.Change, *subscriber) {
	sub := &subscriber{
		kinds: map[configv1.Kind]bool{},
		ch:    make(chan *configv1.Change, st.subBuffer),
		done:  make(chan struct{}),
	}
	if len(kinds) == 0 {
		kinds = []configv1.Kind{configv1.Kind_KIND_TENANT, configv1.Kind_KIND_EVENT_TYPE, configv1.Kind_KIND_ENDPOINT}
	}
	for _, k := range kinds {
		sub.kinds[k] = true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var snap []*configv1.Change
	if sub.kinds[configv1.Kind_KIND_TENANT] {
		for _, t := range sortedValues(st.tenants) {
			snap = append(snap, upsertChange(t))
		}
	}
	if sub.kinds[configv1.Kind_KIND_EVENT_TYPE] {
		for _, et := range sortedValues(st.eventTypes) {
			snap = append(snap, upsertChange(et))
		}
	}
	if sub.kinds[configv1.Kind_KIND_ENDPOINT] {
		for _, tenant := range slices.Sorted(maps.Keys(st.endpoints)) {
			for _, ep := range sortedValues(st.endpoints[tenant]) {
				snap = append(snap, upsertChange(ep))
			}
		}
	}
	st.subs[sub] = struct{}{}
	return snap, sub
}

// unsubscribe removes a subscriber; it is safe to call more than once.
func (st *state) unsubscribe(sub *subscriber) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.subs, sub)
}

func (st *state) dropLocked(sub *subscriber, err error) {
	delete(st.subs, sub)
	sub.err = err
	close(sub.done)
}

// publishLocked hands a change to every subscriber of its kind without
// blocking; a subscriber whose buffer is full is dropped.
func (st *state) publishLocked(kind configv1.Kind, c *configv1.Change) {
	for sub := range st.subs {
		if !sub.kinds[kind] {
			continue
		}
		select {
		case sub.ch <- c:
		default:
			st.dropLocked(sub, errTooSlow)
		}
	}
}

// upsertChange wraps an object in an OP_UPSERT change.
func upsertChange(m proto.Message) *configv1.Change {
	return newChange(configv1.Op_OP_UPSERT, m)
}

// deleteChange wraps an object with only its identifying fields in an
// OP_DELETE change.
func deleteChange(m proto.Message) *configv1.Change {
	return newChange(configv1.Op_OP_DELETE, m)
}

func newChange(op configv1.Op, m proto.Message) *configv1.Change {
	c := &configv1.Change{Op: op}
	switch o := m.(type) {
	case *configv1.Tenant:
		c.Object = &configv1.Change_Tenant{Tenant: o}
	case *configv1.EventType:
		c.Object = &configv1.Change_EventType{EventType: o}
	case *configv1.Endpoint:
		c.Object = &configv1.Change_Endpoint{Endpoint: o}
	}
	return c
}

func sortedValues[V any](m map[string]V) []V {
	out, _ := page(m, "", len(m))
	return out
}
