package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	"github.com/pulsehooks/pulsehooks/pkg/pulseclient"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// answers records the HTTP status each numbered publish got (0: no answer).
type answers struct {
	mu     sync.Mutex
	status map[int]int
}

func (a *answers) set(n, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status[n] = status
}

// count is the number of publishes answered with status, or, with status
// -1, with any error.
func (a *answers) count(status int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := 0
	for _, s := range a.status {
		if s == status || status == -1 && s >= 400 {
			c++
		}
	}
	return c
}

func TestErrorAnswerMeansNotStoredAcrossNATSOutage(t *testing.T) {
	h := newHarness(t, options{logLevel: slog.LevelError})
	got := &answers{status: map[int]int{}}
	var (
		next    atomic.Int64
		stopped atomic.Bool
		wg      sync.WaitGroup
	)
	const publishers = 8
	defer func() {
		stopped.Store(true)
		wg.Wait()
	}()
	for range publishers {
		wg.Go(func() {
			for !stopped.Load() {
				n := int(next.Add(1))
				key := ""
				if n%2 == 1 {
					key = fmt.Sprintf(`,"idempotency_key":"k%d"`, n)
				}
				status, _, _, err := h.tryPost(fmt.Sprintf(`{"tenant_id":%q,"event_type":"job.created","data":{"n":%d}%s}`, tenantA, n, key), nil)
				if err != nil {
					t.Errorf("publish %d: %v", n, err)
				}
				got.set(n, status)
			}
		})
	}
	waitCount := func(what string, status, atLeast int) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, func() error {
			if c := got.count(status); c < atLeast {
				return fmt.Errorf("%d %s, want at least %d", c, what, atLeast)
			}
			return nil
		})
	}

	waitCount("accepted before the outage", http.StatusAccepted, 50)
	h.nats.Stop()
	failedBefore := got.count(-1)
	waitCount("errors during the outage", -1, failedBefore+50)
	acceptedBefore := got.count(http.StatusAccepted)
	h.nats.Start()
	waitCount("accepted after the outage", http.StatusAccepted, acceptedBefore+50)
	stopped.Store(true)
	wg.Wait()

	stored := h.storedNumbers()
	byStatus := map[int]int{}
	for n, status := range got.status {
		byStatus[status]++
		want := 0
		switch status {
		case http.StatusAccepted:
			want = 1
		case http.StatusGatewayTimeout:
			want = min(stored[n], 1) // the outcome is unknown; at most once
		}
		if stored[n] != want {
			t.Errorf("publish %d answered %d is stored %d times, want %d", n, status, stored[n], want)
		}
	}
	for n := range stored {
		if _, ok := got.status[n]; !ok {
			t.Errorf("EVENTS holds publish %d, which was never sent", n)
		}
	}
	t.Logf("%d publishes: answers by status %v; %d stored", len(got.status), byStatus, len(stored))
	if byStatus[http.StatusServiceUnavailable] == 0 {
		t.Error("no publish was answered 503: the outage was not observed")
	}
	// Only a publish in flight when the server stopped can time out; one
	// made during the outage fails at once.
	if byStatus[http.StatusGatewayTimeout] > publishers {
		t.Errorf("%d publishes timed out, want at most %d (one per publisher in flight at the stop)", byStatus[http.StatusGatewayTimeout], publishers)
	}
}

// storedNumbers reads every event in EVENTS and counts them by their data's
// "n".
func (h *harness) storedNumbers() map[int]int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stream jetstream.Stream
	testenv.WaitFor(h.t, 20*time.Second, func() error {
		var err error
		stream, err = h.js.Stream(ctx, streams.Events)
		return err
	})
	info, err := stream.Info(ctx)
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	counts := map[int]int{}
	if info.State.Msgs == 0 {
		return counts
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		h.t.Fatalf("ordered consumer: %v", err)
	}
	for read := uint64(0); read < info.State.Msgs; read++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			h.t.Fatalf("read event %d of %d: %v", read+1, info.State.Msgs, err)
		}
		var ev eventv1.Event
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			h.t.Fatalf("decode event: %v", err)
		}
		var payload struct {
			Data struct {
				N int `json:"n"`
			} `json:"data"`
		}
		if err := json.Unmarshal(ev.GetPayload(), &payload); err != nil {
			h.t.Fatalf("decode payload %s: %v", ev.GetPayload(), err)
		}
		counts[payload.Data.N]++
	}
	return counts
}

func TestNotStored(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"reconnect buffer disabled", nats.ErrReconnectBufExceeded, true},
		{"no responders", nats.ErrNoResponders, true},
		{"no stream response", jetstream.ErrNoStreamResponse, true},
		{"stream refused", fmt.Errorf("nats: %w", &jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeStreamNotFound}), true},
		{"ack timed out", context.DeadlineExceeded, false},
		{"nats timeout", nats.ErrTimeout, false},
		{"connection closed while waiting", nats.ErrConnectionClosed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := notStored(fmt.Errorf("publish msg_1: %w", tt.err)); got != tt.want {
				t.Errorf("notStored(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestAckNotInTimeIsAnsweredBeforePublishersGiveUp makes EVENTS store
// events without acking them (the stream's NoAck, as when an ack is lost
// in a server stop or an election): the event is stored, so the only true
// answer is 504 "may have been stored", and it must reach the publisher
// before the publisher's own timeout — pulseclient's attempt timeout over
// NATS, a client one second short of the request bound over HTTP. A
// publisher that hears nothing cannot tell a stored event from a refused
// one (in TestNATSOutageErrorAnswersAreNotStored such a publish, counted as
// an error answer, was stored).
func TestAckNotInTimeIsAnsweredBeforePublishersGiveUp(t *testing.T) {
	h := newHarness(t, options{logLevel: slog.LevelError})
	ctx := context.Background()
	stream, err := h.js.Stream(ctx, streams.Events)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.NoAck = true
	if _, err := h.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("make %s store without acks: %v", streams.Events, err)
	}

	client := &http.Client{Timeout: requestTimeout - time.Second}
	req, err := http.NewRequest(http.MethodPost, h.url("/v1/events"),
		strings.NewReader(fmt.Sprintf(`{"tenant_id":%q,"event_type":"job.created","data":{"n":1},"idempotency_key":"k1"}`, tenantA)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("HTTP publish got no answer within the client's %v: %v", client.Timeout, err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var reply errorReply
	_ = json.Unmarshal(body, &reply)
	if resp.StatusCode != http.StatusGatewayTimeout || reply.Error.Code != pulseclient.CodeTimeout || !strings.Contains(reply.Error.Message, "may have been stored") {
		t.Errorf("HTTP publish answered %d %s, want 504 %s saying the event may have been stored", resp.StatusCode, body, pulseclient.CodeTimeout)
	}

	data, err := proto.Marshal(&eventv1.PublishRequest{TenantId: tenantA, EventType: "job.created", Data: []byte(`{"n":2}`), IdempotencyKey: "k2"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := h.pub.RequestMsg(&nats.Msg{Subject: streams.IngestSubject, Data: data}, pulseclient.DefaultAttemptTimeout)
	if err != nil {
		t.Fatalf("NATS publish got no answer within pulseclient's attempt timeout %v: %v", pulseclient.DefaultAttemptTimeout, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "504" {
		t.Errorf("NATS publish answered code %q (%s), want 504", code, msg.Header.Get(micro.ErrorHeader))
	}

	// Both were stored: an error answer other than 504 would have been false.
	stored := h.storedNumbers()
	if stored[1] != 1 || stored[2] != 1 {
		t.Errorf("EVENTS holds publish 1 %d times and publish 2 %d times, want once each", stored[1], stored[2])
	}
}
