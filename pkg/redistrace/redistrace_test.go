package redistrace

import (
	"context"
	"testing"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

var incrScript = redis.NewScript(`return redis.call("INCRBY", KEYS[1], ARGV[1])`)

// run makes a command, a pipeline and a script call in ctx, and checks
// each ran once.
func run(ctx context.Context, t *testing.T, rdb *redis.Client, key string) {
	t.Helper()
	if err := rdb.Set(ctx, key, "1", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, key)
		p.Get(ctx, key)
		return nil
	})
	if err != nil || cmds[0].(*redis.IntCmd).Val() != 2 || cmds[1].(*redis.StringCmd).Val() != "2" {
		t.Fatalf("pipeline = %v, %v; want INCR 2, GET 2", cmds, err)
	}
	if n, err := incrScript.Run(ctx, rdb, []string{key}, 3).Int(); err != nil || n != 5 {
		t.Fatalf("script = %d, %v; want 5", n, err)
	}
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "5" {
		t.Fatalf("GET = %q, %v; want 5 (every command ran once)", v, err)
	}
}

func TestCommandsTracedOnlyInRecordedSpans(t *testing.T) {
	r := testenv.StartRedis(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	rdb := r.Client(t)
	if err := Instrument(rdb, tp); err != nil {
		t.Fatal(err)
	}

	// No span at all (a background loop), and an unsampled trace: nothing.
	run(context.Background(), t, rdb, "k0")
	unsampled := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1},
	}))
	ctx, span := tp.Tracer("test").Start(unsampled, "unsampled")
	run(ctx, t, rdb, "k1")
	span.End()
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans recorded without a recorded parent, want none", n)
	}

	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	run(ctx, t, rdb, "k2")
	parent.End()
	var names []string
	for _, s := range rec.Ended() {
		if s.Name() == "parent" {
			continue
		}
		names = append(names, s.Name())
		if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s span: parent %s kind %v, want the recorded parent, client", s.Name(), s.Parent().SpanID(), s.SpanKind())
		}
		got := map[attribute.Key]string{}
		for _, a := range s.Attributes() {
			got[a.Key] = a.Value.String()
		}
		if got["db.system"] != "redis" || got["server.address"] != "127.0.0.1" {
			t.Errorf("%s span attributes = %v, want db.system redis, server.address 127.0.0.1", s.Name(), got)
		}
		if _, ok := got["db.statement"]; ok {
			t.Errorf("%s span records the statement %q", s.Name(), got["db.statement"])
		}
	}
	// The script is loaded since the untraced runs: EVALSHA alone.
	want := []string{"set", "redis.pipeline incr get", "evalsha", "get"}
	if len(names) != len(want) {
		t.Fatalf("spans %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("span %d = %q, want %q (all %v)", i, names[i], want[i], names)
		}
	}
}

// TestUnsampledCommandsCostNothing: outside a recorded span the gate adds
// no allocation to a command or a pipeline, where redisotel's hook alone
// allocates on every one.
func TestUnsampledCommandsCostNothing(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	ctx, span := tp.Tracer("test").Start(context.Background(), "unsampled")
	defer span.End()
	cmd := redis.NewStringCmd(ctx, "get", "k")
	cmds := []redis.Cmder{cmd, redis.NewStringCmd(ctx, "get", "j")}
	end := func(context.Context, redis.Cmder) error { return nil }
	endPipe := func(context.Context, []redis.Cmder) error { return nil }

	g := gate{traced: redis.NewClient(&redis.Options{})}
	process, pipeline := g.ProcessHook(end), g.ProcessPipelineHook(endPipe)
	if n := testing.AllocsPerRun(100, func() { _ = process(ctx, cmd) }); n != 0 {
		t.Errorf("gated command: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = pipeline(ctx, cmds) }); n != 0 {
		t.Errorf("gated pipeline: %v allocations, want 0", n)
	}

	// What the gate saves: redisotel's own hook, on a client of its own.
	plain := redis.NewClient(&redis.Options{})
	if err := redisotel.InstrumentTracing(plain, redisotel.WithTracerProvider(tp)); err != nil {
		t.Fatal(err)
	}
	plain.AddHook(handBack{})
	nctx := context.WithValue(ctx, nextKey{}, next{process: end, pipeline: endPipe})
	if n := testing.AllocsPerRun(100, func() { _ = plain.Process(nctx, cmd) }); n == 0 {
		t.Errorf("redisotel's hook made no allocation for an unsampled command; the gate may be unneeded")
	}
}
