package delivery

import (
	"sync"

	"google.golang.org/grpc"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// fakeConfig is an in-test ConfigService: Watch sends a snapshot of the
// endpoints the test put, then every later change.
type fakeConfig struct {
	configv1.UnimplementedConfigServiceServer

	mu        sync.Mutex
	endpoints map[string]*configv1.Endpoint
	watchers  map[chan *configv1.Change]struct{}
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
