package delivery

import (
	"context"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// fakeConfig is an in-test ConfigService: Watch sends a snapshot of the
// endpoints the test put, then every later change.
type fakeConfig struct {
	configv1.UnimplementedConfigServiceServer

	mu        sync.Mutex
	endpoints map[string]*configv1.Endpoint
	watchers  map[chan *configv1.Change]struct{}
	// disables records the DisableEndpoint calls.
	disables []*configv1.DisableEndpointRequest
}

func (f *fakeConfig) Watch(_ *configv1.WatchRequest, stream grpc.ServerStreamingServer[configv1.WatchResponse]) error {
	f.mu.Lock()
	snapshot := make([]*configv1.Change, 0, len(f.endpoints))
	for _, ep := range f.endpoints {
		snapshot = append(snapshot, &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_Endpoint{Endpoint: ep}})
	}
	ch := make(chan *configv1.Change, 64)
	f.watchers[ch] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.watchers, ch)
		f.mu.Unlock()
	}()
	seq := uint64(1)
	if err := stream.Send(&configv1.WatchResponse{Changes: snapshot, SnapshotComplete: true, Sequence: seq}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case c := <-ch:
			seq++
			if err := stream.Send(&configv1.WatchResponse{Changes: []*configv1.Change{c}, SnapshotComplete: true, Sequence: seq}); err != nil {
				return err
			}
		}
	}
}

// put creates or replaces an endpoint and tells the watchers.
func (f *fakeConfig) put(ep *configv1.Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endpoints[ep.GetId()] = ep
	for ch := range f.watchers {
		ch <- &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_Endpoint{Endpoint: ep}}
	}
}

// DisableEndpoint disables an endpoint the way the config service does: a
// new revision, enabled false, the reason kept, watchers told.
func (f *fakeConfig) DisableEndpoint(_ context.Context, req *configv1.DisableEndpointRequest) (*configv1.DisableEndpointResponse, error) {
	f.mu.Lock()
	f.disables = append(f.disables, req)
	cur, ok := f.endpoints[req.GetEndpointId()]
	f.mu.Unlock()
	if !ok || cur.GetTenantId() != req.GetTenantId() {
		return nil, status.Error(codes.NotFound, "endpoint not found")
	}
	if !cur.GetEnabled() {
		return &configv1.DisableEndpointResponse{Endpoint: cur}, nil
	}
	ep := proto.Clone(cur).(*configv1.Endpoint)
	ep.Enabled = false
	ep.DisabledReason = req.GetReason()
	ep.Revision++
	f.put(ep)
	return &configv1.DisableEndpointResponse{Endpoint: ep, Changed: true}, nil
}

// disableCalls returns the DisableEndpoint calls so far.
func (f *fakeConfig) disableCalls() []*configv1.DisableEndpointRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.disables)
}
