package config

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// Limits of one WatchResponse: at most watchBatchSize changes, and no more
// than about watchBatchBytes encoded, well under clients' receive limits.
const (
	watchBatchSize  = 1000
	watchBatchBytes = 4 << 20
)

// errShuttingDown ends Watch streams at shutdown; clients reconnect to
// another replica.
var errShuttingDown = errors.New("config service is shutting down; watch again")

// grpcServer implements pulsehooks.config.v1.ConfigService from the state.
type grpcServer struct {
	configv1.UnimplementedConfigServiceServer
	state    *state
	store    *Store
	stopping <-chan struct{}
}

// GetEndpoint returns one endpoint of a tenant, secrets in clear text.
func (g *grpcServer) GetEndpoint(ctx context.Context, req *configv1.GetEndpointRequest) (*configv1.GetEndpointResponse, error) {
	if req.GetTenantId() == "" || req.GetEndpointId() == "" {
		return nil, status.Error(codes.InvalidArgument, "tenant_id and endpoint_id are required")
	}
	if err := g.state.waitLoaded(ctx); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	ep, ok := g.state.endpoint(req.GetTenantId(), req.GetEndpointId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "endpoint %q of tenant %q not found", req.GetEndpointId(), req.GetTenantId())
	}
	return &configv1.GetEndpointResponse{Endpoint: ep}, nil
}

// ListEndpoints returns every endpoint of a tenant, by id.
func (g *grpcServer) ListEndpoints(ctx context.Context, req *configv1.ListEndpointsRequest) (*configv1.ListEndpointsResponse, error) {
	if req.GetTenantId() == "" {
		return nil, status.Error(codes.InvalidArgument, "tenant_id is required")
	}
	if err := g.state.waitLoaded(ctx); err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &configv1.ListEndpointsResponse{Endpoints: g.state.allEndpoints(req.GetTenantId())}, nil
}

// DisableEndpoint disables an endpoint for the system and says whether this
// call changed it.
func (g *grpcServer) DisableEndpoint(ctx context.Context, req *configv1.DisableEndpointRequest) (*configv1.DisableEndpointResponse, error) {
	if req.GetTenantId() == "" || req.GetEndpointId() == "" {
		return nil, status.Error(codes.InvalidArgument, "tenant_id and endpoint_id are required")
	}
	ep, changed, err := g.store.DisableEndpoint(ctx, req.GetTenantId(), req.GetEndpointId(), req.GetReason())
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, status.Errorf(codes.NotFound, "endpoint %q of tenant %q not found", req.GetEndpointId(), req.GetTenantId())
	case errors.Is(err, ErrConflict):
		return nil, status.Error(codes.Aborted, err.Error())
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	case err != nil:
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &configv1.DisableEndpointResponse{Endpoint: ep, Changed: changed}, nil
}

// Watch sends a snapshot of the requested kinds in batches, the last marked
// snapshot_complete, then every change as it is applied to the state.
func (g *grpcServer) Watch(req *configv1.WatchRequest, stream grpc.ServerStreamingServer[configv1.WatchResponse]) error {
	ctx := stream.Context()
	for _, k := range req.GetKinds() {
		if k != configv1.Kind_KIND_TENANT && k != configv1.Kind_KIND_EVENT_TYPE && k != configv1.Kind_KIND_ENDPOINT {
			return status.Errorf(codes.InvalidArgument, "kind %v cannot be watched", k)
		}
	}
	if err := g.state.waitLoaded(ctx); err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	snap, sub := g.state.subscribe(req.GetKinds())
	defer g.state.unsubscribe(sub)

	w := &watchSender{stream: stream}
	for {
		n := nextBatch(snap)
		if err := w.send(snap[:n], n == len(snap)); err != nil {
			return err
		}
		if snap = snap[n:]; len(snap) == 0 {
			break
		}
	}
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-g.stopping:
			return status.Error(codes.Unavailable, errShuttingDown.Error())
		case <-sub.done:
			return status.Error(codes.ResourceExhausted, sub.err.Error())
		case c := <-sub.ch:
			if err := w.send(drainBatch(c, sub.ch), true); err != nil {
				return err
			}
		}
	}
}

// watchSender numbers the batches of one Watch stream from 1.
type watchSender struct {
	stream grpc.ServerStreamingServer[configv1.WatchResponse]
	seq    uint64
}

func (w *watchSender) send(changes []*configv1.Change, complete bool) error {
	w.seq++
	if err := w.stream.Send(&configv1.WatchResponse{Changes: changes, SnapshotComplete: complete, Sequence: w.seq}); err != nil {
		return status.Errorf(status.Code(err), "send watch batch %d: %v", w.seq, err)
	}
	return nil
}

// nextBatch returns how many of changes go into the next batch: at most
// watchBatchSize changes and, past the first, watchBatchBytes encoded.
func nextBatch(changes []*configv1.Change) int {
	size := 0
	for i, c := range changes {
		size += proto.Size(c)
		if i == watchBatchSize || (i > 0 && size > watchBatchBytes) {
			return i
		}
	}
	return len(changes)
}

// drainBatch returns first and the changes already waiting in ch, within the
// batch limits; it never waits.
func drainBatch(first *configv1.Change, ch <-chan *configv1.Change) []*configv1.Change {
	batch := []*configv1.Change{first}
	size := proto.Size(first)
	for len(batch) < watchBatchSize && size < watchBatchBytes {
		select {
		case c := <-ch:
			batch = append(batch, c)
			size += proto.Size(c)
		default:
			return batch
		}
	}
	return batch
}

// tokenEqual compares a presented secret token with the expected one in
// constant time (over their SHA-256, so lengths do not leak either).
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// bearerAuth checks "authorization: Bearer <token>" in the call's metadata;
// an empty token lets every call through.
type bearerAuth string

func (b bearerAuth) check(ctx context.Context) error {
	if b == "" {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return status.Error(codes.Unauthenticated, "missing authorization metadata: send \"Bearer <internal token>\"")
	}
	got, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || !tokenEqual(got, string(b)) {
		return status.Error(codes.Unauthenticated, "invalid internal token")
	}
	return nil
}

func (b bearerAuth) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (b bearerAuth) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := b.check(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}
