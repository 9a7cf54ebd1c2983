// Package redistrace traces Redis commands with redisotel, but only inside
// recorded spans.
//
// redisotel's hook does its work on every command: it formats the command
// (and, for a pipeline, every command in it), looks up the caller, and
// starts a span, whether or not the span can be recorded — and without a
// parent at all it starts root spans. pulsehooks makes most of its Redis
// calls on unsampled deliveries, so Instrument puts redisotel's hook behind
// a gate: a command runs through it only when the context's span is
// recording, and otherwise costs one context lookup.
//
// redisotel installs its hook only into a client. The gate therefore keeps
// a private client that never connects (no command is ever sent through
// it): redisotel instruments that client, and a last hook on it hands each
// command back to the instrumented client's own chain, so the command is
// sent once, on that client's connections, inside redisotel's span.
package redistrace

import (
	"context"
	"fmt"
	"net"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// Instrument traces rdb's commands and pipelines with redisotel and tp,
// inside recorded spans only. Dials are not traced. Extra options go to
// redisotel after pulsehooks' defaults (no caller lookup, no statement
// text: arguments can hold idempotency keys and tenant data).
func Instrument(rdb redis.UniversalClient, tp trace.TracerProvider, opts ...redisotel.TracingOption) error {
	addr := ""
	if c, ok := rdb.(*redis.Client); ok {
		addr = c.Options().Addr
	}
	// The span's server.address and db.connection_string come from this
	// client's options; it never dials (it has no command of its own).
	traced := redis.NewClient(&redis.Options{Addr: addr})
	all := append([]redisotel.TracingOption{
		redisotel.WithTracerProvider(tp),
		redisotel.WithDialFilter(true),
		redisotel.WithCallerEnabled(false),
		redisotel.WithDBStatement(false),
	}, opts...)
	if err := redisotel.InstrumentTracing(traced, all...); err != nil {
		return fmt.Errorf("instrument redis tracing: %w", err)
	}
	traced.AddHook(handBack{})
	rdb.AddHook(gate{traced: traced})
	return nil
}

// nextKey carries, in the context of a traced command, the rest of the
// instrumented client's chain: what handBack runs.
type nextKey struct{}

type next struct {
	process  redis.ProcessHook
	pipeline redis.ProcessPipelineHook
}

// gate runs a command through the traced client's hooks when its context's
// span is recording, and straight on otherwise.
type gate struct{ traced *redis.Client }

func (gate) DialHook(h redis.DialHook) redis.DialHook { return h }

func (g gate) ProcessHook(h redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !trace.SpanFromContext(ctx).IsRecording() {
			return h(ctx, cmd)
		}
		return g.traced.Process(context.WithValue(ctx, nextKey{}, next{process: h}), cmd)
	}
}

func (g gate) ProcessPipelineHook(h redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !trace.SpanFromContext(ctx).IsRecording() {
			return h(ctx, cmds)
		}
		pipe := g.traced.Pipeline()
		for _, cmd := range cmds {
			_ = pipe.Process(ctx, cmd) // queues it
		}
		_, err := pipe.Exec(context.WithValue(ctx, nextKey{}, next{pipeline: h}))
		return err
	}
}

// handBack is the traced client's last hook: instead of its own (never
// connected) sending, it runs the instrumented client's chain that the gate
// put in the context.
type handBack struct{}

func (handBack) DialHook(redis.DialHook) redis.DialHook {
	return func(context.Context, string, string) (net.Conn, error) {
		return nil, fmt.Errorf("redistrace: the tracing client does not connect")
	}
}

func (handBack) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		n, ok := ctx.Value(nextKey{}).(next)
		if !ok || n.process == nil {
			return fmt.Errorf("redistrace: %s reached the tracing client outside the gate", cmd.Name())
		}
		return n.process(ctx, cmd)
	}
}

func (handBack) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n, ok := ctx.Value(nextKey{}).(next)
		if !ok || n.pipeline == nil {
			return fmt.Errorf("redistrace: a pipeline reached the tracing client outside the gate")
		}
		return n.pipeline(ctx, cmds)
	}
}
