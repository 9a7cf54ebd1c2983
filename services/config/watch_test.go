package config

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pulsehooks/pulsehooks/pkg/configwatch"
	"github.com/pulsehooks/pulsehooks/pkg/grpcx"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// dialConfig returns a ConfigService client for addr through pkg/grpcx, as
// the other services connect.
func dialConfig(t *testing.T, addr, token string) configv1.ConfigServiceClient {
	t.Helper()
	conn, err := grpcx.Dial(addr, token, noop.NewTracerProvider())
	if err != nil {
		t.Fatalf("dial config service: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return grpcx.ConfigClient(conn)
}

// runView runs a configwatch.View until the test ends and waits for its
// first snapshot.
func runView(t *testing.T, client configv1.ConfigServiceClient, kinds ...configv1.Kind) *configwatch.View {
	t.Helper()
	v := configwatch.New(client, slog.New(slog.DiscardHandler), kinds...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = v.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
	defer waitCancel()
	if err := v.WaitReady(waitCtx); err != nil {
		t.Fatalf("view not ready: %v", err)
	}
	return v
}

func TestWatchFeedsConfigwatchView(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	first := h.newEndpoint(key, map[string]any{
		"url": "https://example.com/a", "event_types": []string{"job.completed"},
		"basic_auth": map[string]string{"username": "u", "password": "pw-123"},
	})
	v := runView(t, dialConfig(t, h.svc.GRPCAddr(), testInternalToken))

	if tn, ok := v.Tenant("acme"); !ok || tn.GetName() != "Tenant acme" {
		t.Errorf("view tenant acme = %v, %v", tn, ok)
	}
	if _, ok := v.EventType("job.failed"); !ok {
		t.Errorf("view lacks the seeded event type job.failed")
	}
	ep, ok := v.Endpoint(first.ID)
	if !ok {
		t.Fatalf("view lacks endpoint %s", first.ID)
	}
	if ep.GetBasicAuth().GetPassword() != "pw-123" || !strings.HasPrefix(CurrentSecret(ep), "whsec_") || ep.GetTimeoutMs() != 15000 {
		t.Errorf("view endpoint = %v, want clear password, secret and 15000 ms timeout", ep)
	}
	if filtered, _ := v.Match("acme", "job.completed"); len(filtered) != 1 {
		t.Errorf("Match(acme, job.completed) = %v, want the endpoint", filtered)
	}

	// A change through REST reaches the view well under a second.
	start := time.Now()
	second := h.newEndpoint(key, map[string]any{"url": "https://example.com/b"})
	testenv.WaitFor(t, time.Second, func() error {
		if _, ok := v.Endpoint(second.ID); !ok {
			return fmt.Errorf("endpoint %s not in the view", second.ID)
		}
		return nil
	})
	t.Logf("REST create reached the view in %v", time.Since(start))

	status, data := h.api(key, http.MethodPatch, "/v1/endpoints/"+first.ID, map[string]any{"enabled": false})
	if status != http.StatusOK {
		t.Fatalf("patch: status %d: %s", status, data)
	}
	testenv.WaitFor(t, time.Second, func() error {
		if ep, _ := v.Endpoint(first.ID); ep.GetEnabled() {
			return fmt.Errorf("endpoint %s still enabled in the view", first.ID)
		}
		return nil
	})
	if status, data := h.api(key, http.MethodDelete, "/v1/endpoints/"+second.ID, nil); status != http.StatusNoContent {
		t.Fatalf("delete: status %d: %s", status, data)
	}
	h.newTenant("beta")
	status, data = h.admin(http.MethodDelete, "/admin/v1/event-types/job.cancelled", nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete event type: status %d: %s", status, data)
	}
	testenv.WaitFor(t, time.Second, func() error {
		if _, ok := v.Endpoint(second.ID); ok {
			return fmt.Errorf("deleted endpoint %s still in the view", second.ID)
		}
		if _, ok := v.Tenant("beta"); !ok {
			return fmt.Errorf("tenant beta not in the view")
		}
		if _, ok := v.EventType("job.cancelled"); ok {
			return fmt.Errorf("deleted event type still in the view")
		}
		return nil
	})

	// Shutdown ends the Watch stream at once rather than waiting it out.
	start = time.Now()
	h.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown with an open Watch stream took %v, want under 3s", d)
	}
}

func TestGRPCEndpointLookups(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/a", "secret": "whsec_" + strings.Repeat("QUFB", 8)})
	client := dialConfig(t, h.svc.GRPCAddr(), testInternalToken)
	ctx := t.Context()

	got, err := client.GetEndpoint(ctx, &configv1.GetEndpointRequest{TenantId: "acme", EndpointId: ep.ID})
	if err != nil {
		t.Fatalf("GetEndpoint: %v", err)
	}
	if e := got.GetEndpoint(); e.GetUrl() != ep.URL || CurrentSecret(e) != "whsec_"+strings.Repeat("QUFB", 8) || e.GetRevision() == 0 {
		t.Errorf("GetEndpoint = %v, want the endpoint with its clear secret and a revision", e)
	}
	list, err := client.ListEndpoints(ctx, &configv1.ListEndpointsRequest{TenantId: "acme"})
	if err != nil || len(list.GetEndpoints()) != 1 {
		t.Errorf("ListEndpoints = %v, %v; want one endpoint", list, err)
	}
	tests := []struct {
		name string
		req  *configv1.GetEndpointRequest
		code codes.Code
	}{
		{"other tenant", &configv1.GetEndpointRequest{TenantId: "other", EndpointId: ep.ID}, codes.NotFound},
		{"unknown id", &configv1.GetEndpointRequest{TenantId: "acme", EndpointId: "ep_nope"}, codes.NotFound},
		{"missing tenant", &configv1.GetEndpointRequest{EndpointId: ep.ID}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.GetEndpoint(ctx, tt.req)
			if got := status.Code(err); got != tt.code {
				t.Errorf("GetEndpoint error code = %v (%v), want %v", got, err, tt.code)
			}
		})
	}
	stream, err := client.Watch(ctx, &configv1.WatchRequest{Kinds: []configv1.Kind{configv1.Kind_KIND_UNSPECIFIED}})
	if err == nil {
		_, err = stream.Recv()
	}
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Errorf("Watch of KIND_UNSPECIFIED: code %v (%v), want InvalidArgument", got, err)
	}
}

func TestGRPCRequiresInternalToken(t *testing.T) {
	h := startService(t)
	for _, token := range []string{"", "wrong-token"} {
		t.Run("token "+token, func(t *testing.T) {
			client := dialConfig(t, h.svc.GRPCAddr(), token)
			_, err := client.GetEndpoint(t.Context(), &configv1.GetEndpointRequest{TenantId: "a", EndpointId: "b"})
			if got := status.Code(err); got != codes.Unauthenticated {
				t.Errorf("GetEndpoint code = %v (%v), want Unauthenticated", got, err)
			}
			stream, err := client.Watch(t.Context(), &configv1.WatchRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			if got := status.Code(err); got != codes.Unauthenticated {
				t.Errorf("Watch code = %v (%v), want Unauthenticated", got, err)
			}
		})
	}
}

func TestWatchEmptySnapshot(t *testing.T) {
	h := startService(t)
	stream, err := dialConfig(t, h.svc.GRPCAddr(), testInternalToken).Watch(t.Context(), &configv1.WatchRequest{Kinds: []configv1.Kind{configv1.Kind_KIND_ENDPOINT}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if resp.GetSequence() != 1 || !resp.GetSnapshotComplete() || len(resp.GetChanges()) != 0 {
		t.Errorf("first batch of an empty store = %v, want sequence 1, complete, no changes", resp)
	}
}

// serveState serves a grpcServer over a bare state on a loopback port.
func serveState(t *testing.T, st *state) configv1.ConfigServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	stopping := make(chan struct{})
	configv1.RegisterConfigServiceServer(srv, &grpcServer{state: st, stopping: stopping})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		close(stopping)
		srv.Stop()
		<-served
	})
	return dialConfig(t, lis.Addr().String(), "")
}

func fakeTenant(i int) *configv1.Tenant {
	return &configv1.Tenant{Id: fmt.Sprintf("t%05d", i), Name: strings.Repeat("n", 100), Revision: uint64(i + 1)}
}

func TestWatchBatchesSnapshotAndNumbersBatches(t *testing.T) {
	st := newState(watchBuffer)
	for i := range 2500 {
		st.putTenant(fakeTenant(i))
	}
	st.markLoaded()
	stream, err := serveState(t, st).Watch(t.Context(), &configv1.WatchRequest{Kinds: []configv1.Kind{configv1.Kind_KIND_TENANT}})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		size     int
		complete bool
	}{{1000, false}, {1000, false}, {500, true}, {1, true}}
	for i, w := range want {
		if i == 3 {
			st.putTenant(fakeTenant(9999))
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv batch %d: %v", i+1, err)
		}
		if got := resp.GetSequence(); got != uint64(i+1) {
			t.Errorf("batch %d has sequence %d", i+1, got)
		}
		if len(resp.GetChanges()) != w.size || resp.GetSnapshotComplete() != w.complete {
			t.Errorf("batch %d: %d changes, complete %v; want %d, %v", i+1, len(resp.GetChanges()), resp.GetSnapshotComplete(), w.size, w.complete)
		}
	}
}

func TestSlowWatcherIsDisconnected(t *testing.T) {
	st := newState(4)
	st.markLoaded()
	client := serveState(t, st)
	ctx := t.Context()
	slow, err := client.Watch(ctx, &configv1.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Recv(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// The slow client stops reading; the state keeps applying changes
	// without blocking, far more than the transport and buffer hold.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20000 {
			st.putTenant(fakeTenant(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("state updates blocked behind a slow watcher")
	}
	var recvErr error
	for recvErr == nil {
		_, recvErr = slow.Recv()
	}
	if got := status.Code(recvErr); got != codes.ResourceExhausted {
		t.Fatalf("slow watcher ended with %v (%v), want ResourceExhausted", got, recvErr)
	}
	// Watching again starts with a fresh, complete snapshot.
	again, err := client.Watch(ctx, &configv1.WatchRequest{Kinds: []configv1.Kind{configv1.Kind_KIND_TENANT}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		resp, err := again.Recv()
		if err != nil {
			t.Fatalf("Recv fresh snapshot: %v", err)
		}
		n += len(resp.GetChanges())
		if resp.GetSnapshotComplete() {
			break
		}
	}
	if n != 20000 {
		t.Errorf("fresh snapshot has %d tenants, want 20000", n)
	}
}

func TestReplicasConverge(t *testing.T) {
	a := startService(t)
	b := &harness{t: t, nats: a.nats, cfg: a.cfg}
	b.cfg.AttemptLogDir = t.TempDir() // every replica has its own attempt log
	b.start()
	_, key := a.newTenant("acme")
	v := runView(t, dialConfig(t, b.svc.GRPCAddr(), testInternalToken), configv1.Kind_KIND_ENDPOINT)

	ep := a.newEndpoint(key, map[string]any{"url": "https://example.com/a"})
	testenv.WaitFor(t, time.Second, func() error {
		if _, ok := v.Endpoint(ep.ID); !ok {
			return fmt.Errorf("endpoint made on replica A not in replica B's Watch")
		}
		status, data := b.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
		if status != http.StatusOK {
			return fmt.Errorf("replica B GET = %d: %s", status, data)
		}
		return nil
	})
	status, data := b.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"description": "from B"})
	if status != http.StatusOK {
		t.Fatalf("patch on replica B: status %d: %s", status, data)
	}
	testenv.WaitFor(t, time.Second, func() error {
		_, data := a.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
		if got := decode[endpointView](t, data).Description; got != "from B" {
			return fmt.Errorf("replica A description = %q, want %q", got, "from B")
		}
		return nil
	})
}

func TestNextBatchLimits(t *testing.T) {
	change := func(descBytes int) *configv1.Change {
		return upsertChange(&configv1.Endpoint{Id: "ep", Description: strings.Repeat("d", descBytes)})
	}
	many := func(n, descBytes int) []*configv1.Change {
		out := make([]*configv1.Change, n)
		for i := range out {
			out[i] = change(descBytes)
		}
		return out
	}
	tests := []struct {
		name    string
		changes []*configv1.Change
		want    int
	}{
		{"empty", nil, 0},
		{"few small", many(3, 10), 3},
		{"count limit", many(2500, 10), watchBatchSize},
		{"byte limit", many(10, 1500<<10), 2},
		{"one oversized change still goes alone", many(3, 5<<20), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextBatch(tt.changes); got != tt.want {
				t.Errorf("nextBatch = %d, want %d", got, tt.want)
			}
		})
	}
	ch := make(chan *configv1.Change, 10)
	for range 5 {
		ch <- change(1500 << 10)
	}
	if got := len(drainBatch(change(10), ch)); got != 4 {
		t.Errorf("drainBatch took %d changes, want 4 (stopping once past %d bytes)", got, watchBatchBytes)
	}
}
