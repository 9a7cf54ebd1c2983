package pulseclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// reply is one scripted answer of the fake ingest: an error when status is
// set, otherwise a PublishResponse.
type reply struct {
	status  string
	code    string
	message string
	resp    *eventv1.PublishResponse
}

// fakeIngest answers publishes with scripted replies, the last one repeating,
// and records what it received.
type fakeIngest struct {
	mu       sync.Mutex
	script   []reply
	requests []*eventv1.PublishRequest
	headers  []nats.Header
}

func (f *fakeIngest) handle(req micro.Request) {
	var pr eventv1.PublishRequest
	if err := proto.Unmarshal(req.Data(), &pr); err != nil {
		_ = req.Error("400", "bad protobuf", nil)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, &pr)
	f.headers = append(f.headers, nats.Header(req.Headers()))
	r := f.script[0]
	if len(f.script) > 1 {
		f.script = f.script[1:]
	}
	f.mu.Unlock()
	if r.status != "" {
		body, _ := proto.Marshal(&eventv1.Error{Code: r.code, Message: r.message})
		_ = req.Error(r.status, r.message, body)
		return
	}
	body, _ := proto.Marshal(r.resp)
	_ = req.Respond(body)
}

func (f *fakeIngest) received() ([]*eventv1.PublishRequest, []nats.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*eventv1.PublishRequest(nil), f.requests...), append([]nats.Header(nil), f.headers...)
}

// serve registers f as the ingest micro service on nc.
func (f *fakeIngest) serve(t *testing.T, nc *nats.Conn) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{
		Name:     "fake-ingest",
		Version:  "1.0.0",
		Endpoint: &micro.EndpointConfig{Subject: DefaultSubject, Handler: micro.HandlerFunc(f.handle)},
	})
	if err != nil {
		t.Fatalf("add fake ingest service: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
}

func ok(id string, dup bool) reply {
	return reply{resp: &eventv1.PublishResponse{MessageId: id, Duplicate: dup}}
}

func fastClient(nc *nats.Conn) *Client {
	return New(nc, WithAttemptTimeout(200*time.Millisecond), WithBackoff(5*time.Millisecond, 20*time.Millisecond))
}

func TestDefaultSubjectMatchesStreams(t *testing.T) {
	if DefaultSubject != streams.IngestSubject {
		t.Errorf("DefaultSubject = %q, want streams.IngestSubject %q", DefaultSubject, streams.IngestSubject)
	}
}

func TestPublishReplies(t *testing.T) {
	n := testenv.StartNATS(t)
	tests := []struct {
		name      string
		script    []reply
		want      PublishResult
		wantErr   *Error
		wantTries int
	}{
		{name: "accepted", script: []reply{ok("msg_1", false)}, want: PublishResult{MessageID: "msg_1"}, wantTries: 1},
		{name: "duplicate", script: []reply{ok("msg_1", true)}, want: PublishResult{MessageID: "msg_1", Duplicate: true}, wantTries: 1},
		{
			name:      "unknown event type is returned at once",
			script:    []reply{{status: "422", code: CodeUnknownEventType, message: "event type job.nope is not in the catalog"}},
			wantErr:   &Error{Status: 422, Code: CodeUnknownEventType, Message: "event type job.nope is not in the catalog"},
			wantTries: 1,
		},
		{
			name:      "bad request is returned at once",
			script:    []reply{{status: "400", code: CodeInvalidData, message: "data must be a JSON object"}},
			wantErr:   &Error{Status: 400, Code: CodeInvalidData, Message: "data must be a JSON object"},
			wantTries: 1,
		},
		{
			name:      "503 is retried",
			script:    []reply{{status: "503", code: CodeUnavailable, message: "stream unavailable"}, {status: "503", code: CodeUnavailable, message: "stream unavailable"}, ok("msg_2", false)},
			want:      PublishResult{MessageID: "msg_2"},
			wantTries: 3,
		},
		{
			name:      "504 (outcome unknown) is retried",
			script:    []reply{{status: "504", code: CodeTimeout, message: "timed out waiting for the event stream"}, ok("msg_3", true)},
			want:      PublishResult{MessageID: "msg_3", Duplicate: true},
			wantTries: 2,
		},
		{
			name:      "empty success reply is an error",
			script:    []reply{ok("", false)},
			wantTries: 1,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := DefaultSubject + ".t" + string(rune('a'+i))
			f := &fakeIngest{script: tt.script}
			svc, err := micro.AddService(n.Conn(t), micro.Config{
				Name:     "fake-ingest",
				Version:  "1.0.0",
				Endpoint: &micro.EndpointConfig{Subject: subject, Handler: micro.HandlerFunc(f.handle)},
			})
			if err != nil {
				t.Fatalf("add fake ingest: %v", err)
			}
			t.Cleanup(func() { _ = svc.Stop() })
			c := New(n.Conn(t), WithSubject(subject), WithBackoff(time.Millisecond, 5*time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			got, err := c.Publish(ctx, PublishInput{TenantID: "ten_a", EventType: "job.completed", Data: map[string]any{"job_id": "j1"}, IdempotencyKey: "k1"})

			reqs, _ := f.received()
			if len(reqs) != tt.wantTries {
				t.Errorf("attempts = %d, want %d", len(reqs), tt.wantTries)
			}
			switch {
			case tt.wantErr != nil:
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("Publish error = %v, want an *Error", err)
				}
				if *e != *tt.wantErr {
					t.Errorf("Publish error = %+v, want %+v", *e, *tt.wantErr)
				}
			case tt.want.MessageID == "":
				if err == nil {
					t.Fatalf("Publish = %+v, want an error", got)
				}
			default:
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
				if got != tt.want {
					t.Errorf("Publish = %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestPublishRequestFields(t *testing.T) {
	n := testenv.StartNATS(t)
	f := &fakeIngest{script: []reply{ok("msg_1", false)}}
	f.serve(t, n.Conn(t))
	c := fastClient(n.Conn(t))
	ts := time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	ctx := context.Background()

	if _, err := c.Publish(ctx, PublishInput{TenantID: "ten_a", EventType: "job.failed", Data: json.RawMessage(`{"a": 1}`), IdempotencyKey: "key-1", Timestamp: ts}); err != nil {
		t.Fatalf("Publish raw: %v", err)
	}
	if _, err := c.Publish(ctx, PublishInput{TenantID: "ten_a", EventType: "job.failed", Data: struct {
		JobID string `json:"job_id"`
	}{"j9"}}); err != nil {
		t.Fatalf("Publish struct: %v", err)
	}

	reqs, _ := f.received()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	first := reqs[0]
	if first.GetTenantId() != "ten_a" || first.GetEventType() != "job.failed" || first.GetIdempotencyKey() != "key-1" {
		t.Errorf("request = %v, want tenant ten_a, type job.failed, key key-1", first)
	}
	if got := string(first.GetData()); got != `{"a": 1}` {
		t.Errorf("raw data = %s, want it sent as is", got)
	}
	if got := first.GetTimestamp().AsTime(); !got.Equal(ts) {
		t.Errorf("timestamp = %v, want %v", got, ts)
	}
	second := reqs[1]
	if got := string(second.GetData()); got != `{"job_id":"j9"}` {
		t.Errorf("marshalled data = %s, want %s", got, `{"job_id":"j9"}`)
	}
	if second.GetTimestamp() != nil {
		t.Errorf("timestamp = %v, want unset for a zero Timestamp", second.GetTimestamp())
	}
	if !strings.HasPrefix(second.GetIdempotencyKey(), "pc_") {
		t.Errorf("generated idempotency key = %q, want a pc_ key", second.GetIdempotencyKey())
	}
}

func TestPublishRetriesKeepTheGeneratedKey(t *testing.T) {
	n := testenv.StartNATS(t)
	unavailable := reply{status: "503", code: CodeUnavailable, message: "not ready"}
	f := &fakeIngest{script: []reply{unavailable, unavailable, ok("msg_1", false)}}
	f.serve(t, n.Conn(t))

	if _, err := fastClient(n.Conn(t)).Publish(context.Background(), PublishInput{TenantID: "ten_a", EventType: "job.created", Data: map[string]int{}}); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	reqs, _ := f.received()
	if len(reqs) != 3 {
		t.Fatalf("attempts = %d, want 3", len(reqs))
	}
	key := reqs[0].GetIdempotencyKey()
	if key == "" {
		t.Fatal("first attempt has no idempotency key, want a generated one")
	}
	for i, r := range reqs {
		if r.GetIdempotencyKey() != key {
			t.Errorf("attempt %d key = %q, want %q as on the first attempt", i+1, r.GetIdempotencyKey(), key)
		}
	}
}

func TestPublishWaitsForLateResponder(t *testing.T) {
	n := testenv.StartNATS(t)
	clientConn := n.Conn(t)
	c := fastClient(clientConn)
	f := &fakeIngest{script: []reply{ok("msg_late", false)}}
	done := make(chan error, 1)
	go func() {
		res, err := c.Publish(context.Background(), PublishInput{TenantID: "ten_a", EventType: "job.created", Data: map[string]int{}})
		if err == nil && res.MessageID != "msg_late" {
			err = errors.New("message id " + res.MessageID + ", want msg_late")
		}
		done <- err
	}()
	// The client's connection sends nothing but requests: wait until three
	// attempts met no responders before ingest starts.
	testenv.WaitFor(t, 5*time.Second, func() error {
		if got := clientConn.Stats().OutMsgs; got < 3 {
			return fmt.Errorf("client sent %d requests, want at least 3", got)
		}
		return nil
	})
	f.serve(t, n.Conn(t))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish did not return after the responder started")
	}
}

func TestPublishGivesUpWhenContextEnds(t *testing.T) {
	n := testenv.StartNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()

	_, err := fastClient(n.Conn(t)).Publish(ctx, PublishInput{TenantID: "ten_a", EventType: "job.created", Data: map[string]int{}})

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish error = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("Publish error = %v, want it to wrap the last attempt's nats.ErrNoResponders", err)
	}
}

func TestPublishRejectsUnencodableData(t *testing.T) {
	n := testenv.StartNATS(t)
	clientConn := n.Conn(t)

	_, err := fastClient(clientConn).Publish(context.Background(), PublishInput{TenantID: "ten_a", EventType: "job.created", Data: make(chan int)})

	if err == nil || !strings.Contains(err.Error(), "encode event data") {
		t.Errorf("Publish error = %v, want an encode error", err)
	}
	if got := clientConn.Stats().OutMsgs; got != 0 {
		t.Errorf("requests sent = %d, want 0", got)
	}
}

func TestPublishInjectsTraceContext(t *testing.T) {
	n := testenv.StartNATS(t)
	f := &fakeIngest{script: []reply{ok("msg_1", false)}}
	f.serve(t, n.Conn(t))
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	if _, err := fastClient(n.Conn(t)).Publish(ctx, PublishInput{TenantID: "ten_a", EventType: "job.created", Data: map[string]int{}}); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	_, headers := f.received()
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := headers[0].Get("traceparent"); got != want {
		t.Errorf("traceparent = %q, want %q", got, want)
	}
}

func TestErrorHelpers(t *testing.T) {
	tests := []struct {
		err       error
		code      string
		wantIs    bool
		temporary bool
	}{
		{err: &Error{Status: 503, Code: CodeUnavailable}, code: CodeUnavailable, wantIs: true, temporary: true},
		{err: &Error{Status: 504, Code: CodeTimeout}, code: CodeTimeout, wantIs: true, temporary: true},
		{err: fmt.Errorf("wrapped: %w", &Error{Status: 422, Code: CodeUnknownTenant}), code: CodeUnknownTenant, wantIs: true},
		{err: &Error{Status: 400, Code: CodeInvalidData}, code: CodeUnknownTenant},
		{err: errors.New("plain"), code: CodeInternal},
	}
	for _, tt := range tests {
		if got := IsCode(tt.err, tt.code); got != tt.wantIs {
			t.Errorf("IsCode(%v, %q) = %v, want %v", tt.err, tt.code, got, tt.wantIs)
		}
		var e *Error
		if errors.As(tt.err, &e) && e.Temporary() != tt.temporary {
			t.Errorf("(%v).Temporary() = %v, want %v", e, e.Temporary(), tt.temporary)
		}
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	b := backoff{next: 100 * time.Millisecond, max: 400 * time.Millisecond}
	steps := []time.Duration{100, 200, 400, 400}
	for i, step := range steps {
		step *= time.Millisecond
		got := b.delay()
		if lo, hi := step*4/5, step*6/5; got < lo || got > hi {
			t.Errorf("delay %d = %v, want within [%v, %v]", i+1, got, lo, hi)
		}
	}
}
