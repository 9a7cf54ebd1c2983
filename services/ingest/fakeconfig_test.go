package ingest

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// fakeConfig is an in-test config service whose Watch sends a fixed
// snapshot of tenants and event types, once release is closed, and then
// blocks until the client goes away.
type fakeConfig struct {
	configv1.UnimplementedConfigServiceServer
	tenants    []string
	eventTypes []string
	// quotas are tenants' quota overrides.
	quotas map[string]*configv1.TenantQuotas
	// schemas are the JSON Schemas of some event types, by name.
	schemas map[string]string
	release chan struct{}
}

// Watch sends the snapshot in one batch marked complete.
func (f *fakeConfig) Watch(_ *configv1.WatchRequest, stream grpc.ServerStreamingServer[configv1.WatchResponse]) error {
	select {
	case <-f.release:
	case <-stream.Context().Done():
		return nil
	}
	var changes []*configv1.Change
	for _, id := range f.tenants {
		changes = append(changes, &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_Tenant{Tenant: &configv1.Tenant{Id: id, Name: id, Quotas: f.quotas[id]}}})
	}
	for _, name := range f.eventTypes {
		changes = append(changes, &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_EventType{EventType: &configv1.EventType{Name: name, JsonSchema: f.schemas[name]}}})
	}
	if err := stream.Send(&configv1.WatchResponse{Changes: changes, SnapshotComplete: true, Sequence: 1}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// startFakeConfig serves f on a loopback port and returns a client of it.
// The snapshot is sent at once unless held is true; then close f.release.
func startFakeConfig(t *testing.T, f *fakeConfig, held bool) configv1.ConfigServiceClient {
	t.Helper()
	f.release = make(chan struct{})
	if !held {
		close(f.release)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for fake config service: %v", err)
	}
	srv := grpc.NewServer()
	configv1.RegisterConfigServiceServer(srv, f)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial fake config service: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return configv1.NewConfigServiceClient(conn)
}
