// Package grpcx builds the gRPC client connection the services use to reach
// the config service, with tracing and the optional internal bearer token.
package grpcx

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// bearer adds "authorization: Bearer <token>" to every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// Dial returns a client connection to the config service at addr. The
// connection is lazy: it connects on first use and reconnects by itself.
// token, when not empty, is sent as a bearer token on every call.
func Dial(addr, token string, tp trace.TracerProvider) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tp),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpc client for config service at %s: %w", addr, err)
	}
	return conn, nil
}

// ConfigClient returns a ConfigService client on conn.
func ConfigClient(conn *grpc.ClientConn) configv1.ConfigServiceClient {
	return configv1.NewConfigServiceClient(conn)
}
