package fanout

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// snapshotBatch is how many changes one snapshot batch of fakeConfig carries.
const snapshotBatch = 1000

// fakeConfig stands in for the config service: Watch sends a snapshot of the
// tenants and endpoints it holds, then every change pushed after. Snapshots
// are held back until release is called when the fake is made with held.
type fakeConfig struct {
	configv1.UnimplementedConfigServiceServer

	released    chan struct{}
	releaseOnce sync.Once
	watching    chan struct{} // closed at the first Watch call
	watchOnce   sync.Once

	mu        sync.Mutex
	tenants   map[string]*configv1.Tenant
	endpoints map[string]*configv1.Endpoint
	watchers  map[*watcher]struct{}
}

// watcher is one open Watch stream; kicked is closed when it fell too far behind.
type watcher struct {
	changes chan []*configv1.Change
	kicked  chan struct{}
}

func newFakeConfig(held bool) *fakeConfig {
	f := &fakeConfig{
		released:  make(chan struct{}),
		watching:  make(chan struct{}),
		tenants:   map[string]*configv1.Tenant{},
		endpoints: map[string]*configv1.Endpoint{},
		watchers:  map[*watcher]struct{}{},
	}
	if !held {
		f.release()
	}
	return f
}

// serve serves f on a loopback listener until the test ends and returns a
// client of it.
func (f *fakeConfig) serve(t testing.TB) configv1.ConfigServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for the fake config service: %v", err)
	}
	srv := grpc.NewServer()
	configv1.RegisterConfigServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc client of the fake config service: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return configv1.NewConfigServiceClient(conn)
}

// release lets held snapshots be sent.
func (f *fakeConfig) release() { f.releaseOnce.Do(func() { close(f.released) }) }

// push applies changes and sends them, as one batch, to every open Watch.
func (f *fakeConfig) push(changes ...*configv1.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		f.applyLocked(c)
	}
	for w := range f.watchers {
		select {
		case w.changes <- changes:
		default: // like the real service: a watcher too far behind starts over
			delete(f.watchers, w)
			close(w.kicked)
		}
	}
}

func (f *fakeConfig) applyLocked(c *configv1.Change) {
	del := c.GetOp() == configv1.Op_OP_DELETE
	switch o := c.GetObject().(type) {
	case *configv1.Change_Tenant:
		if del {
			delete(f.tenants, o.Tenant.GetId())
		} else {
			f.tenants[o.Tenant.GetId()] = o.Tenant
		}
	case *configv1.Change_Endpoint:
		if del {
			delete(f.endpoints, o.Endpoint.GetId())
		} else {
			f.endpoints[o.Endpoint.GetId()] = o.Endpoint
		}
	}
}

// Watch implements configv1.ConfigServiceServer.
func (f *fakeConfig) Watch(req *configv1.WatchRequest, stream grpc.ServerStreamingServer[configv1.WatchResponse]) error {
	f.watchOnce.Do(func() { close(f.watching) })
	ctx := stream.Context()
	select {
	case <-f.released:
	case <-ctx.Done():
		return nil
	}
	snapshot, w := f.subscribe(req.GetKinds())
	defer f.unsubscribe(w)

	var seq uint64
	send := func(changes []*configv1.Change, complete bool) error {
		seq++
		return stream.Send(&configv1.WatchResponse{Changes: changes, SnapshotComplete: complete, Sequence: seq})
	}
	for {
		n := min(len(snapshot), snapshotBatch)
		if err := send(snapshot[:n], n == len(snapshot)); err != nil {
			return err
		}
		if snapshot = snapshot[n:]; len(snapshot) == 0 {
			break
		}
	}
	for {
		select {
		case changes := <-w.changes:
			if err := send(changes, true); err != nil {
				return err
			}
		case <-w.kicked:
			return context.Canceled
		case <-ctx.Done():
			return nil
		}
	}
}

// subscribe returns the snapshot of the requested kinds and registers a
// watcher for the changes after it.
func (f *fakeConfig) subscribe(kinds []configv1.Kind) ([]*configv1.Change, *watcher) {
	wants := func(k configv1.Kind) bool { return len(kinds) == 0 || slices.Contains(kinds, k) }
	f.mu.Lock()
	defer f.mu.Unlock()
	var snapshot []*configv1.Change
	if wants(configv1.Kind_KIND_TENANT) {
		for _, t := range f.tenants {
			snapshot = append(snapshot, upsertTenant(t))
		}
	}
	if wants(configv1.Kind_KIND_ENDPOINT) {
		for _, ep := range f.endpoints {
			snapshot = append(snapshot, upsertEndpoint(ep))
		}
	}
	w := &watcher{changes: make(chan []*configv1.Change, 1024), kicked: make(chan struct{})}
	f.watchers[w] = struct{}{}
	return snapshot, w
}

func (f *fakeConfig) unsubscribe(w *watcher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.watchers, w)
}

func upsertTenant(t *configv1.Tenant) *configv1.Change {
	return &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_Tenant{Tenant: t}}
}

func upsertEndpoint(ep *configv1.Endpoint) *configv1.Change {
	return &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_Endpoint{Endpoint: ep}}
}

func deleteEndpoint(ep *configv1.Endpoint) *configv1.Change {
	return &configv1.Change{Op: configv1.Op_OP_DELETE, Object: &configv1.Change_Endpoint{
		Endpoint: &configv1.Endpoint{Id: ep.GetId(), TenantId: ep.GetTenantId()},
	}}
}
