package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/metrics"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// Fixtures of the fake configuration.
const (
	tenantA   = "ten_acme"
	tenantB   = "ten_globex"
	testToken = "operator-token-for-tests"
	// A W3C trace context sent by publishers in the tests.
	remoteTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	remoteSpanID      = "00f067aa0ba902b7"
	remoteTraceparent = "00-" + remoteTraceID + "-" + remoteSpanID + "-01"
)

// harness is one ingest service on a real embedded nats-server, with the
// in-test config service.
type harness struct {
	t      *testing.T
	nats   *testenv.NATS
	config configv1.ConfigServiceClient
	fake   *fakeConfig
	spans  *tracetest.SpanRecorder
	// pub is the publishers' connection; js reads the streams.
	pub *nats.Conn
	js  jetstream.JetStream
	svc *Service
	// stop cancels Run and returns its result.
	stop func() error
}

// options change the harness.
type options struct {
	// held holds the config snapshot back until fake.release is closed.
	held bool
	// configure changes the service configuration.
	configure func(*Config)
	// late leaves the service unstarted; call h.start.
	late bool
	// redis, when set, holds the rate limits.
	redis redis.UniversalClient
	// quotas are tenants' quota overrides in the fake configuration.
	quotas map[string]*configv1.TenantQuotas
	// nc, when set, is the service's connection (default a new one).
	nc *nats.Conn
	// logLevel is the least level of the service's logs shown (default
	// warnings).
	logLevel slog.Level
	// metrics, when set, gives the service its meter provider and
	// /metrics handler.
	metrics *metrics.Provider
}

// cancelledSchema is the JSON Schema the fake catalog gives job.cancelled.
const cancelledSchema = `{"type":"object","required":["job_id","error"],"properties":{"job_id":{"type":"string"},` +
	`"error":{"type":"object","required":["code"],"properties":{"code":{"type":"string"}}}}}`

// newHarness starts NATS, the fake config service and, unless o.late,
// ingest, waiting until it is ready unless o.held.
func newHarness(t *testing.T, o options) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		nats:  testenv.StartNATS(t),
		fake:  &fakeConfig{tenants: []string{tenantA, tenantB}, eventTypes: []string{"job.created", "job.completed", "job.failed", "job.cancelled"}, schemas: map[string]string{"job.cancelled": cancelledSchema}, quotas: o.quotas},
		spans: tracetest.NewSpanRecorder(),
	}
	h.config = startFakeConfig(t, h.fake, o.held)
	h.pub = h.nats.Conn(t)
	h.js = h.nats.JetStream(t)
	if !o.late {
		h.start(o)
		if !o.held {
			h.waitReady()
		}
	}
	return h
}

// start makes and runs the service; it is stopped when the test ends.
func (h *harness) start(o options) {
	h.t.Helper()
	// No drain period unless a test sets one: every stop would wait for it.
	cfg := Config{HTTPAddr: "127.0.0.1:0", OperatorToken: testToken, ShutdownTimeout: 5 * time.Second, DrainPeriod: -1}
	if o.configure != nil {
		o.configure(&cfg)
	}
	log := slog.New(slog.NewTextHandler(h.t.Output(), &slog.HandlerOptions{Level: max(o.logLevel, slog.LevelWarn)}))
	nc := o.nc
	if nc == nil {
		nc = h.nats.Conn(h.t)
	}
	deps := Deps{
		NATS:           nc,
		Config:         h.config,
		Logger:         log,
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans)),
		Redis:          o.redis,
	}
	if o.metrics != nil {
		deps.MeterProvider, deps.MetricsHandler = o.metrics.MeterProvider(), o.metrics.Handler()
	}
	svc, err := New(context.Background(), cfg, deps)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.svc = svc
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var (
		result  error
		stopped bool
	)
	stop := func() error {
		if stopped {
			return result
		}
		stopped = true
		// Connections the test's HTTP client dialled but never used are, to
		// the server, new connections that Shutdown waits for until they are
		// 5 s old — the whole shutdown timeout here. Closing them on the
		// client side lets Shutdown wait only for requests really in flight.
		http.DefaultClient.CloseIdleConnections()
		cancel()
		select {
		case result = <-done:
		case <-time.After(20 * time.Second):
			result = errors.New("Run did not return 20 s after its context ended")
		}
		return result
	}
	h.stop = stop
	h.t.Cleanup(func() {
		if err := stop(); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
}

// waitReady waits until /readyz answers 200 (which it does only once the
// server has the publish subscription) and the micro service answers pings.
func (h *harness) waitReady() {
	h.t.Helper()
	ping, err := micro.ControlSubject(micro.PingVerb, ServiceName, "")
	if err != nil {
		h.t.Fatalf("ping subject: %v", err)
	}
	testenv.WaitFor(h.t, 10*time.Second, func() error {
		if status, body := h.get("/readyz"); status != http.StatusOK {
			return fmt.Errorf("/readyz = %d %s", status, body)
		}
		if _, err := h.pub.Request(ping, nil, time.Second); err != nil {
			return fmt.Errorf("ping %s: %w", ServiceName, err)
		}
		return nil
	})
}

// url is the address of an HTTP path of the service.
func (h *harness) url(path string) string { return "http://" + h.svc.HTTPAddr() + path }

// get sends a GET and returns the status and body.
func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	resp, err := http.Get(h.url(path))
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends POST /v1/events with the body and headers (a header set to ""
// is removed) and returns the status, response headers and body. Without
// headers, it sends the operator token and application/json.
func (h *harness) post(body string, headers map[string]string) (int, http.Header, []byte) {
	h.t.Helper()
	status, header, b, err := h.tryPost(body, headers)
	if err != nil {
		h.t.Fatal(err)
	}
	return status, header, b
}

// tryPost is post for goroutines other than the test's: it returns errors.
func (h *harness) tryPost(body string, headers map[string]string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, h.url("/v1/events"), strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("POST /v1/events: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read response: %w", err)
	}
	return resp.StatusCode, resp.Header, b, nil
}

// publish sends a PublishRequest over NATS, with optional headers, and
// returns the raw reply.
func (h *harness) publish(req *eventv1.PublishRequest, header nats.Header) (*nats.Msg, error) {
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("marshal request: %w", err)
	}
	return h.publishRaw(data, header)
}

func (h *harness) publishRaw(data []byte, header nats.Header) (*nats.Msg, error) {
	msg := &nats.Msg{Subject: streams.IngestSubject, Data: data, Header: header}
	return h.pub.RequestMsg(msg, 10*time.Second)
}

// mustPublish publishes and requires a success reply.
func (h *harness) mustPublish(req *eventv1.PublishRequest) *eventv1.PublishResponse {
	h.t.Helper()
	reply, err := h.publish(req, nil)
	if err != nil {
		h.t.Fatalf("publish: %v", err)
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		h.t.Fatalf("publish answered %s %s, want success", code, reply.Header.Get(micro.ErrorHeader))
	}
	var resp eventv1.PublishResponse
	if err := proto.Unmarshal(reply.Data, &resp); err != nil {
		h.t.Fatalf("decode reply: %v", err)
	}
	return &resp
}

// eventCount is the number of messages in EVENTS.
func (h *harness) eventCount() uint64 {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), streams.Events)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0 // Run has not ensured it yet: nothing can have been stored
	}
	if err != nil {
		h.t.Fatalf("look up %s: %v", streams.Events, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

// idemKeys is the number of keys in the idempotency bucket.
func (h *harness) idemKeys() int {
	h.t.Helper()
	kv, err := h.js.KeyValue(context.Background(), IdempotencyBucket)
	if err != nil {
		h.t.Fatalf("open bucket: %v", err)
	}
	keys, err := kv.ListKeys(context.Background())
	if err != nil {
		h.t.Fatalf("list keys: %v", err)
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	return n
}

// storedEvent returns the last EVENTS message on subject and its decoded
// Event.
func (h *harness) storedEvent(subject string) (*jetstream.RawStreamMsg, *eventv1.Event) {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), streams.Events)
	if err != nil {
		h.t.Fatalf("look up %s: %v", streams.Events, err)
	}
	msg, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		h.t.Fatalf("get last message on %s: %v", subject, err)
	}
	var ev eventv1.Event
	if err := proto.Unmarshal(msg.Data, &ev); err != nil {
		h.t.Fatalf("decode stored event: %v", err)
	}
	return msg, &ev
}

// serviceError decodes a micro error reply; ok is false for a success.
func serviceError(t *testing.T, reply *nats.Msg) (status string, body *eventv1.Error, ok bool) {
	t.Helper()
	status, body, ok, err := decodeServiceError(reply)
	if err != nil {
		t.Fatal(err)
	}
	return status, body, ok
}

// decodeServiceError is serviceError for goroutines other than the test's.
func decodeServiceError(reply *nats.Msg) (status string, body *eventv1.Error, ok bool, err error) {
	status = reply.Header.Get(micro.ErrorCodeHeader)
	if status == "" {
		return "", nil, false, nil
	}
	body = &eventv1.Error{}
	if err := proto.Unmarshal(reply.Data, body); err != nil {
		return "", nil, false, fmt.Errorf("decode error body: %w", err)
	}
	return status, body, true, nil
}

// httpError decodes {"error":{"code","message"}}.
func httpError(t *testing.T, body []byte) errorBody {
	t.Helper()
	var r errorReply
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode error body %q: %v", body, err)
	}
	return r.Error
}

// spanView is a recorded span.
type spanView = sdktrace.ReadOnlySpan

// protoUnmarshalReply decodes a success reply body.
func protoUnmarshalReply(b []byte, resp *eventv1.PublishResponse) error {
	if err := proto.Unmarshal(b, resp); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	return nil
}
