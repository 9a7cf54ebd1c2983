package delivery

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// tracedWorker starts a worker whose spans (all sampled, parent based) rec
// records, and returns a context in a sampled trace of another provider,
// as fanout's would be.
func tracedWorker(t *testing.T, e *env, cfg Config, opts workerOptions) (*tracetest.SpanRecorder, context.Context) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts.tracer = tp
	e.startWorker(t, cfg, opts)
	ctx, span := sdktrace.NewTracerProvider().Tracer("fanout").Start(context.Background(), "fanout")
	span.End()
	return rec, ctx
}

// ended waits until rec has ended at least n spans named name, and returns
// them in the order they ended.
func ended(t *testing.T, rec *tracetest.SpanRecorder, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	var out []sdktrace.ReadOnlySpan
	testenv.WaitFor(t, waitTimeout, func() error {
		out = out[:0]
		for _, s := range rec.Ended() {
			if s.Name() == name {
				out = append(out, s)
			}
		}
		if len(out) < n {
			return fmt.Errorf("%d %q spans ended, want %d", len(out), name, n)
		}
		return nil
	})
	return out
}

// attrs returns span's attributes as text.
func attrs(span sdktrace.ReadOnlySpan) map[attribute.Key]string {
	out := map[attribute.Key]string{}
	for _, a := range span.Attributes() {
		out[a.Key] = a.Value.String()
	}
	return out
}

// hasAttrs checks that span has each attribute of want.
func hasAttrs(t *testing.T, span sdktrace.ReadOnlySpan, want map[attribute.Key]string) {
	t.Helper()
	got := attrs(span)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s span: %s = %q, want %q", span.Name(), k, got[k], v)
		}
	}
}

// TestSpansFollowMessagingConventions: the delivery span is the consumer
// span of the DELIVERIES message, and the attempt record's publish has its
// producer span, a child of it.
func TestSpansFollowMessagingConventions(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	rec, ctx := tracedWorker(t, e, testConfig(), workerOptions{})
	d := newDelivery(ep)
	e.publish(ctx, t, d)
	rc.next(t)
	a := e.attempts(t, 1)[0]

	delivery := ended(t, rec, "delivery", 1)[0]
	if delivery.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("delivery span kind = %v, want consumer", delivery.SpanKind())
	}
	hasAttrs(t, delivery, map[attribute.Key]string{
		"messaging.system":              "nats",
		"messaging.operation.type":      "process",
		"messaging.operation.name":      "process",
		"messaging.destination.name":    streams.DeliverySubject(ep.GetId(), 1),
		"messaging.consumer.group.name": streams.PartitionConsumer(0),
		"messaging.message.id":          streams.DeliveryMsgID(d.GetMessageId(), ep.GetId()),
	})
	record := ended(t, rec, "publish ATTEMPTS", 1)[0]
	if record.SpanKind() != trace.SpanKindProducer || record.Parent().SpanID() != delivery.SpanContext().SpanID() {
		t.Errorf("publish ATTEMPTS span: kind %v parent %s, want producer, child of the delivery span %s",
			record.SpanKind(), record.Parent().SpanID(), delivery.SpanContext().SpanID())
	}
	hasAttrs(t, record, map[attribute.Key]string{
		"messaging.system":           "nats",
		"messaging.operation.type":   "send",
		"messaging.operation.name":   "publish",
		"messaging.destination.name": streams.AttemptSubject(testTenant, ep.GetId()),
		"messaging.message.id":       a.GetId(),
	})
}

// TestRetryIsLinkedToTheAttemptThatScheduledIt: the second attempt, back
// from the Redis schedule, is in the event's trace (a child of the
// scheduler's publish span) and linked to the first attempt's span.
func TestRetryIsLinkedToTheAttemptThatScheduledIt(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	rec, ctx := tracedWorker(t, e, testConfig(), workerOptions{})
	event := trace.SpanContextFromContext(ctx)
	d := newDelivery(ep)
	e.publish(ctx, t, d)
	rc.next(t)
	rc.next(t)
	e.attempts(t, 2)

	spans := ended(t, rec, "delivery", 2)
	first, second := spans[0], spans[1]
	if attrs(first)["pulsehooks.attempt"] != "1" || attrs(second)["pulsehooks.attempt"] != "2" {
		t.Fatalf("delivery spans are attempts %s and %s, want 1 and 2", attrs(first)["pulsehooks.attempt"], attrs(second)["pulsehooks.attempt"])
	}
	for _, s := range spans {
		if s.SpanContext().TraceID() != event.TraceID() {
			t.Errorf("attempt %s is in trace %s, want the event's %s", attrs(s)["pulsehooks.attempt"], s.SpanContext().TraceID(), event.TraceID())
		}
	}
	if links := second.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != first.SpanContext().SpanID() ||
		links[0].SpanContext.TraceID() != first.SpanContext().TraceID() {
		t.Errorf("second attempt's links = %+v, want the first attempt's span %s", links, first.SpanContext().SpanID())
	}
	if len(first.Links()) != 0 {
		t.Errorf("first attempt has %d links, want none", len(first.Links()))
	}

	returned := ended(t, rec, "publish DELIVERIES", 1)
	if len(returned) != 1 {
		t.Fatalf("%d scheduler publish spans, want 1", len(returned))
	}
	ret := returned[0]
	if ret.SpanKind() != trace.SpanKindProducer || ret.Parent().SpanID() != event.SpanID() || ret.SpanContext().TraceID() != event.TraceID() {
		t.Errorf("scheduler's span: kind %v, parent %s in trace %s; want producer, child of the event's span %s",
			ret.SpanKind(), ret.Parent().SpanID(), ret.SpanContext().TraceID(), event.SpanID())
	}
	if second.Parent().SpanID() != ret.SpanContext().SpanID() {
		t.Errorf("second attempt's parent = %s, want the scheduler's publish span %s", second.Parent().SpanID(), ret.SpanContext().SpanID())
	}
	// The retry's ZADD is a Redis span of the first attempt (the worker's
	// Redis is traced, pkg/redistrace).
	zadds := 0
	for _, s := range rec.Ended() {
		if s.Name() == "zadd" && s.Parent().SpanID() == first.SpanContext().SpanID() {
			zadds++
		}
	}
	if zadds != 1 {
		t.Errorf("%d zadd spans under the first attempt, want 1", zadds)
	}
	if links := ret.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != first.SpanContext().SpanID() {
		t.Errorf("scheduler's span links = %+v, want the first attempt", links)
	}
	hasAttrs(t, ret, map[attribute.Key]string{
		"messaging.system":           "nats",
		"messaging.operation.type":   "send",
		"messaging.operation.name":   "publish",
		"messaging.destination.name": streams.DeliverySubject(ep.GetId(), 1),
		"messaging.message.id":       streams.ScheduledDeliveryMsgID(d.GetMessageId(), ep.GetId(), "", 1, 1),
		"pulsehooks.endpoint_id":     ep.GetId(),
		"pulsehooks.attempt":         "1",
	})
}

// TestPutOffDeliveriesHaveSpans: a delivery put off by the partition (its
// lane full) has a consumer span of its own, and one put off by the
// deliverer (rate limited) a child of its delivery span, each with the
// reason and the due time.
func TestPutOffDeliveriesHaveSpans(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	hang := newReceiver(t, func(_ http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	rc := newReceiver(t, nil)
	hangEP, limited := newEndpoint(t, hang.srv.URL), newEndpoint(t, rc.srv.URL)
	limited.RateLimit = 1
	e.config.put(hangEP)
	e.config.put(limited)
	cfg := testConfig()
	cfg.LaneConcurrency, cfg.LaneQueue = 1, 1
	rec, ctx := tracedWorker(t, e, cfg, workerOptions{})
	event := trace.SpanContextFromContext(ctx)

	for range 3 { // one in flight, one queued, one put off
		e.publish(ctx, t, newDelivery(hangEP))
	}
	e.publish(ctx, t, newDelivery(limited))
	e.publish(ctx, t, newDelivery(limited))

	var laneFull, rateLimited sdktrace.ReadOnlySpan
	testenv.WaitFor(t, waitTimeout, func() error {
		for _, s := range rec.Ended() {
			if s.Name() != "delivery put off" {
				continue
			}
			// The first of each: a put-off delivery that comes back to a
			// lane still full is put off again, under the scheduler's span.
			switch attrs(s)["pulsehooks.put_off.reason"] {
			case "lane full":
				if laneFull == nil {
					laneFull = s
				}
			case "rate limited":
				if rateLimited == nil {
					rateLimited = s
				}
			}
		}
		if laneFull == nil || rateLimited == nil {
			return fmt.Errorf("put-off spans: lane full %v, rate limited %v", laneFull != nil, rateLimited != nil)
		}
		return nil
	})
	once.Do(func() { close(release) })

	for _, s := range []sdktrace.ReadOnlySpan{laneFull, rateLimited} {
		if s.SpanContext().TraceID() != event.TraceID() {
			t.Errorf("%s put-off span in trace %s, want the event's %s", attrs(s)["pulsehooks.put_off.reason"], s.SpanContext().TraceID(), event.TraceID())
		}
		due, err := time.Parse(time.RFC3339Nano, attrs(s)["pulsehooks.put_off.due"])
		if err != nil || due.Before(s.StartTime().Add(-time.Millisecond)) || due.After(s.StartTime().Add(5*time.Second)) {
			t.Errorf("%s put-off due = %q (%v), want a time just after %v", attrs(s)["pulsehooks.put_off.reason"], attrs(s)["pulsehooks.put_off.due"], err, s.StartTime())
		}
	}
	if laneFull.SpanKind() != trace.SpanKindConsumer || laneFull.Parent().SpanID() != event.SpanID() {
		t.Errorf("lane-full span: kind %v parent %s, want a consumer span, child of the message's %s", laneFull.SpanKind(), laneFull.Parent().SpanID(), event.SpanID())
	}
	hasAttrs(t, laneFull, map[attribute.Key]string{
		"messaging.system":              "nats",
		"messaging.operation.type":      "process",
		"messaging.consumer.group.name": streams.PartitionConsumer(0),
		"pulsehooks.endpoint_id":        hangEP.GetId(),
	})
	if rateLimited.SpanKind() != trace.SpanKindInternal {
		t.Errorf("rate-limited span kind = %v, want internal", rateLimited.SpanKind())
	}
	parentOK := false
	for _, s := range rec.Ended() {
		if s.Name() == "delivery" && s.SpanContext().SpanID() == rateLimited.Parent().SpanID() {
			parentOK = attrs(s)["pulsehooks.endpoint_id"] == limited.GetId()
		}
	}
	if !parentOK {
		t.Errorf("rate-limited put-off span's parent %s is not the delivery span of %s", rateLimited.Parent().SpanID(), limited.GetId())
	}
}

// TestSpansNeverCarryURLSecrets: an endpoint URL's userinfo and query
// values reach no exported span attribute, event or status, whether the
// request is answered or cannot connect, and not the failure's log line;
// the client span has the server, scheme and path instead.
func TestSpansNeverCarryURLSecrets(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusBadGateway) })
	u, _ := url.Parse(rc.srv.URL)
	answered := newEndpoint(t, "http://user:pass@"+u.Host+"/hook?token=secret&v=1")
	// A port nobody listens on: the listener is closed at once.
	dead := newReceiver(t, nil)
	deadURL, _ := url.Parse(dead.srv.URL)
	dead.srv.Close()
	refused := newEndpoint(t, "http://user:pass@"+deadURL.Host+"/hook?token=secret")
	e.config.put(answered)
	e.config.put(refused)
	cfg := testConfig()
	cfg.Schedule = []time.Duration{0} // one attempt each
	var logs syncBuffer
	rec, ctx := tracedWorker(t, e, cfg, workerOptions{logs: &logs})
	e.publish(ctx, t, newDelivery(answered))
	e.publish(ctx, t, newDelivery(refused))
	e.attempts(t, 2)
	clients := ended(t, rec, "POST", 2)

	for _, s := range rec.Ended() {
		texts := []string{s.Name(), s.Status().Description}
		for _, a := range s.Attributes() {
			texts = append(texts, a.Value.String())
		}
		for _, ev := range s.Events() {
			for _, a := range ev.Attributes {
				texts = append(texts, a.Value.String())
			}
		}
		for _, text := range texts {
			if strings.Contains(text, "secret") || strings.Contains(text, "pass") {
				t.Errorf("%s span carries %q", s.Name(), text)
			}
		}
	}
	if strings.Contains(logs.String(), "secret") || strings.Contains(logs.String(), "pass@") {
		t.Errorf("the log carries the URL's secrets:\n%s", logs.String())
	}
	byHost := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range clients {
		byHost[attrs(s)["server.port"]] = s
	}
	s := byHost[u.Port()]
	if s == nil {
		t.Fatalf("no client span for port %s", u.Port())
	}
	hasAttrs(t, s, map[attribute.Key]string{
		"http.request.method":       "POST",
		"server.address":            "127.0.0.1",
		"url.scheme":                "http",
		"url.path":                  "/hook",
		"url.full":                  "http://" + u.Host + "/hook?token=REDACTED&v=REDACTED",
		"http.response.status_code": "502",
		"error.type":                "502",
	})
	if s := byHost[deadURL.Port()]; s == nil || attrs(s)["error.type"] != "OUTCOME_CONNECTION" {
		t.Errorf("refused request's client span = %v, want error.type OUTCOME_CONNECTION", s)
	}
}

// TestFailedAttemptsAreLoggedAtInfo: each failed attempt writes one info
// line with its outcome; the successful one writes none.
func TestFailedAttemptsAreLoggedAtInfo(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	var logs syncBuffer
	e.startWorker(t, testConfig(), workerOptions{logs: &logs})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)
	e.attempts(t, 3)
	e.waitDeliveriesEmpty(t)

	var failed []map[string]any
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if rec["message_id"] != d.GetMessageId() {
			continue
		}
		lines++
		if rec["msg"] == "attempt failed" && rec["level"] == "INFO" {
			failed = append(failed, rec)
		}
	}
	if len(failed) != 2 || lines != 2 {
		t.Fatalf("%d lines about the message, %d of them info \"attempt failed\"; want 2 and 2:\n%s", lines, len(failed), logs.String())
	}
	for i, rec := range failed {
		if rec["outcome"] != "OUTCOME_HTTP_STATUS" || rec["status"] != float64(503) || rec["attempt"] != float64(i+1) {
			t.Errorf("failure line %d = %v, want outcome OUTCOME_HTTP_STATUS, status 503, attempt %d", i, rec, i+1)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
