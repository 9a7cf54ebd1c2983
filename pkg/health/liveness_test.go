package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// healthz returns the status and body of GET base/healthz.
func healthz(base string) (int, string, error) {
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// serveLiveness serves probes with live until the test ends and returns the
// listener's base URL.
func serveLiveness(t *testing.T, live *Liveness) string {
	t.Helper()
	s, err := Listen("127.0.0.1:0", func() bool { return true }, WithLiveness(live))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

// consumerPending is the Pending of a loop pulling c: messages the consumer
// has not delivered yet.
func consumerPending(c jetstream.Consumer) Pending {
	return func(ctx context.Context) (bool, error) {
		info, err := c.Info(ctx)
		if err != nil {
			return false, err
		}
		return info.NumPending > 0, nil
	}
}

// TestLivenessOfAStalledConsumer runs a real JetStream consumer loop whose
// handler can be made to block: /healthz stays 200 while it is idle with
// nothing pending, turns 503 naming the loop within the limit once it
// stalls with messages pending, and 200 again once it resumes.
func TestLivenessOfAStalledConsumer(t *testing.T) {
	const (
		stuckAfter = time.Second
		published  = 40
	)
	n := testenv.StartNATS(t)
	js := n.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}

	live := NewLiveness(stuckAfter)
	base := serveLiveness(t, live)
	loop := live.Loop("work consumer", consumerPending(c))
	defer loop.Close()

	// gate is nil while the handler runs freely; a channel blocks it.
	var gate atomic.Pointer[chan struct{}]
	var handled atomic.Int64
	it, err := c.Messages(jetstream.PullMaxMessages(4))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		for {
			msg, err := it.Next()
			if err != nil {
				return // iterator stopped
			}
			loop.Beat()
			if g := gate.Load(); g != nil {
				<-*g
			}
			if err := msg.Ack(); err != nil {
				t.Errorf("ack: %v", err)
			}
			handled.Add(1)
		}
	}()

	// Idle with nothing pending: healthy for twice the limit.
	for deadline := time.Now().Add(2 * stuckAfter); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, body, err := healthz(base); err != nil || code != http.StatusOK {
			t.Fatalf("idle consumer, nothing pending: /healthz = %d %q (%v), want 200", code, body, err)
		}
	}

	// Stall the handler with messages pending.
	block := make(chan struct{})
	gate.Store(&block)
	stalled := time.Now()
	for i := range published {
		if _, err := js.Publish(ctx, fmt.Sprintf("work.%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var body string
	testenv.WaitFor(t, 3*stuckAfter, func() error {
		code, b, err := healthz(base)
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("/healthz = %d, want 503", code)
		}
		body = b
		return nil
	})
	took := time.Since(stalled)
	if !strings.Contains(body, "work consumer") {
		t.Errorf("/healthz body = %q, want it to name the loop %q", body, "work consumer")
	}
	// The limit plus a cache period and probe spacing, at most.
	if took > stuckAfter+live.cacheFor+500*time.Millisecond {
		t.Errorf("/healthz turned 503 %v after the stall, want within %v", took, stuckAfter+live.cacheFor+500*time.Millisecond)
	}
	t.Logf("/healthz 503 %v after the stall (limit %v): %s", took.Round(time.Millisecond), stuckAfter, strings.TrimSpace(body))

	// Resume: healthy again at once, and every message handled once.
	gate.Store(nil)
	close(block)
	testenv.WaitFor(t, 5*time.Second, func() error {
		if code, b, err := healthz(base); err != nil || code != http.StatusOK {
			return fmt.Errorf("/healthz = %d %q (%v), want 200", code, b, err)
		}
		return nil
	})
	testenv.WaitFor(t, 10*time.Second, func() error {
		if got := handled.Load(); got != published {
			return fmt.Errorf("handled %d messages, want %d", got, published)
		}
		return nil
	})
	it.Stop()
	<-loopDone
	if got := handled.Load(); got != published {
		t.Errorf("handled %d messages in all, want exactly %d", got, published)
	}
}

func TestLivenessCheck(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	live := NewLiveness(time.Minute)
	live.now = func() time.Time { return now }
	errDown := errors.New("server unreachable")
	var calls atomic.Int64
	pending := func(answer bool, err error) Pending {
		return func(context.Context) (bool, error) { calls.Add(1); return answer, err }
	}
	busy := live.Loop("busy", pending(true, nil))
	idle := live.Loop("idle", pending(false, nil))
	unknown := live.Loop("unknown", pending(true, errDown))
	poller := live.Loop("poller", nil)
	ctx := context.Background()

	if err := live.Check(ctx); err != nil || calls.Load() != 0 {
		t.Fatalf("Check right after registering = %v with %d pending calls, want nil and 0", err, calls.Load())
	}
	now = now.Add(time.Minute)
	err := live.Check(ctx)
	if err == nil {
		t.Fatal("Check a minute without beats = nil, want busy and poller stuck")
	}
	for name, want := range map[string]bool{"busy:": true, "poller:": true, "idle:": false, "unknown:": false} {
		if got := strings.Contains(err.Error(), name); got != want {
			t.Errorf("Check = %q: names %s = %v, want %v", err, name, got, want)
		}
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("pending asked %d times, want 3 (the poller has none)", got)
	}
	// Within the cache period the answers are reused.
	_ = live.Check(ctx)
	if got := calls.Load(); got != 3 {
		t.Errorf("pending asked %d times after a second Check within the cache period, want still 3", got)
	}
	busy.Beat()
	poller.Close()
	idle.Beat()
	unknown.Beat()
	if err := live.Check(ctx); err != nil {
		t.Errorf("Check after beats and Close = %v, want nil", err)
	}
	var nilLive *Liveness
	nilLive.Loop("x", nil).Beat() // a nil registry and its loops do nothing
	if err := nilLive.Check(ctx); err != nil {
		t.Errorf("nil Liveness Check = %v, want nil", err)
	}
}

// TestLivenessCheckIsBounded: pending checks that hang do not hold a probe
// past checkTimeout, and count as nothing pending.
func TestLivenessCheckIsBounded(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	live := NewLiveness(time.Minute)
	live.now = func() time.Time { return now }
	for i := range 20 {
		live.Loop(fmt.Sprintf("slow %d", i), func(ctx context.Context) (bool, error) {
			<-ctx.Done() // a server that does not answer
			return false, ctx.Err()
		})
	}
	now = now.Add(2 * time.Minute)
	started := time.Now()
	err := live.Check(context.Background())
	took := time.Since(started)
	if err != nil {
		t.Errorf("Check with unanswered pending checks = %v, want nil", err)
	}
	if took > 5*checkTimeout { // one after the other, they would take 20 × checkTimeout
		t.Errorf("Check of 20 hanging pending checks took %v, want about %v (they run at once)", took, checkTimeout)
	}
}
