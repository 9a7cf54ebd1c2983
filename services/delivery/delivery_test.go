package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/streams"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

func TestSignedPostAndAttemptRecord(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("X-Receiver", "seen")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(strings.Repeat("r", 5000))) // beyond the 4 KiB kept
	})
	ep := newEndpoint(t, rc.srv.URL+"/hooks?src=test")
	ep.Headers = map[string]string{"X-Tenant-Ref": "ref-1", "Content-Type": "text/plain", "Webhook-Id": "forged",
		"X-Partner": "partner-value", "X-Access-Token": "token-value"}
	ep.SecretHeaders = []string{"X-Access-Token", "X-Partner"}
	ep.BasicAuth = &configv1.BasicAuth{Username: "hook-user", Password: "hook-pass"}
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)

	got := rc.next(t)
	if string(got.body) != string(d.Payload) {
		t.Errorf("body = %q, want the payload exactly %q", got.body, d.Payload)
	}
	v, err := signature.NewVerifier(ep.Secrets[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(got.header, got.body); err != nil {
		t.Errorf("Verify = %v, want nil", err)
	}
	for name, want := range map[string]string{
		"Webhook-Id":     d.MessageId,
		"Content-Type":   "application/json",
		"User-Agent":     "pulsehooks/" + Version(),
		"X-Tenant-Ref":   "ref-1",
		"X-Partner":      "partner-value",
		"X-Access-Token": "token-value",
	} {
		if got := got.header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if !got.auth || got.user != "hook-user" || got.pass != "hook-pass" {
		t.Errorf("basic auth = %q/%q (%v), want hook-user/hook-pass", got.user, got.pass, got.auth)
	}

	a := e.attempts(t, 1)[0]
	if a.Outcome != eventv1.Outcome_OUTCOME_SUCCESS || a.StatusCode != http.StatusAccepted {
		t.Errorf("attempt outcome/status = %v/%d, want SUCCESS/202", a.Outcome, a.StatusCode)
	}
	if a.MessageId != d.MessageId || a.TenantId != testTenant || a.EndpointId != ep.Id || a.EventType != d.EventType || a.Url != ep.Url {
		t.Errorf("attempt identity = %s %s %s %s %s, want %s %s %s %s %s", a.MessageId, a.TenantId, a.EndpointId, a.EventType, a.Url,
			d.MessageId, testTenant, ep.Id, d.EventType, ep.Url)
	}
	if a.Attempt != 1 || !strings.HasPrefix(a.Id, "atmpt_") || a.DurationUs <= 0 || a.StartedAt == nil || a.Error != "" {
		t.Errorf("attempt = #%d id %q duration %dµs started %v error %q; want #1, an atmpt_ id, a duration, a start, no error",
			a.Attempt, a.Id, a.DurationUs, a.StartedAt, a.Error)
	}
	if len(a.ResponseBody) != 4096 || strings.Trim(string(a.ResponseBody), "r") != "" {
		t.Errorf("response body kept = %d bytes, want the first 4096", len(a.ResponseBody))
	}
	sent := map[string]string{}
	for _, h := range a.RequestHeaders {
		sent[h.Name] = h.Value
	}
	for name, want := range map[string]string{
		"webhook-signature": redacted,
		"authorization":     redacted,
		"webhook-id":        d.MessageId,
		"content-type":      "application/json",
		"x-tenant-ref":      "ref-1",
		"x-partner":         redacted,
		"x-access-token":    redacted,
	} {
		if sent[name] != want {
			t.Errorf("recorded request header %s = %q, want %q", name, sent[name], want)
		}
	}
	if !slices.ContainsFunc(a.ResponseHeaders, func(h *eventv1.Header) bool { return h.Name == "x-receiver" && h.Value == "seen" }) {
		t.Errorf("recorded response headers %v lack x-receiver: seen", a.ResponseHeaders)
	}
	e.waitDeliveriesEmpty(t)
	if n, err := e.redis.Client(t).Exists(context.Background(), doneKey(d.MessageId, ep.Id)).Result(); err != nil || n != 1 {
		t.Errorf("idempotency key %s exists = %d (%v), want 1", doneKey(d.MessageId, ep.Id), n, err)
	}
}

func TestSecretRotationSignsWithEveryUnexpiredSecret(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	ep := newEndpoint(t, rc.srv.URL)
	current, previous, expired := ep.Secrets[0].Key, newSecret(t), newSecret(t)
	ep.Secrets = append(ep.Secrets,
		&configv1.Secret{Key: previous, ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))},
		&configv1.Secret{Key: expired, ExpiresAt: timestamppb.New(time.Now().Add(-time.Hour))},
	)
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	e.publish(context.Background(), t, newDelivery(ep))

	got := rc.next(t)
	if n := len(strings.Fields(got.header.Get(signature.HeaderSignature))); n != 2 {
		t.Errorf("webhook-signature carries %d signatures, want 2", n)
	}
	for _, tc := range []struct {
		name    string
		secret  string
		wantErr error
	}{
		{"current", current, nil},
		{"previous, not yet expired", previous, nil},
		{"expired", expired, signature.ErrNoMatchingSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := signature.NewVerifier(tc.secret)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(got.header, got.body); !errors.Is(err, tc.wantErr) {
				t.Errorf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestFailedAttemptsAreRetriedUntilSuccess(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n <= 2 {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	ep := newEndpoint(t, rc.srv.URL)
	e.config.put(ep)
	e.startWorker(t, testConfig(), workerOptions{})
	d := newDelivery(ep)
	e.publish(context.Background(), t, d)

	var ids []string
	for i := 0; i < 3; i++ {
		ids = append(ids, rc.next(t).header.Get(signature.HeaderID))
	}
	if want := []string{d.MessageId, d.MessageId, d.MessageId}; !slices.Equal(ids, want) {
		t.Errorf("webhook-id of the three requests = %v, want the message id each time", ids)
	}
	attempts := e.attempts(t, 3)
	for i, want := range []struct {
		outcome eventv1.Outcome
		status  int32
	}{
		{eventv1.Outcome_OUTCOME_HTTP_STATUS, 500},
		{eventv1.Outcome_OUTCOME_HTTP_STATUS, 500},
		{eventv1.Outcome_OUTCOME_SUCCESS, 200},
	} {
		a := attempts[i]
		if a.Outcome != want.outcome || a.StatusCode != want.status || a.Attempt != uint32(i+1) {
			t.Errorf("attempt %d = #%d %v/%d, want #%d %v/%d", i, a.Attempt, a.Outcome, a.StatusCode, i+1, want.outcome, want.status)
		}
	}
	if got := string(attempts[0].ResponseBody); got != "try later\n" {
		t.Errorf("first attempt's response body = %q, want %q", got, "try later\n")
	}
	e.waitDeliveriesEmpty(t)
	if got := rc.count(); got != 3 {
		t.Errorf("receiver got %d requests, want 3", got)
	}
}

// failureCase is an endpoint whose single attempt must fail a certain way.
type failureCase struct {
	name        string
	allow       bool // allow loopback
	timeoutMS   uint32
	respond     func(w http.ResponseWriter, r *http.Request, n int)
	wantOutcome eventv1.Outcome
	wantStatus  int32
	wantError   string
	// wantRequests is how many requests the receiver gets.
	wantRequests int
}

func TestFailureOutcomes(t *testing.T) {
	elsewhere := newReceiver(t, nil)
	for _, tc := range []failureCase{
		{
			name:  "redirect is not followed",
			allow: true,
			respond: func(w http.ResponseWriter, r *http.Request, _ int) {
				http.Redirect(w, r, elsewhere.srv.URL, http.StatusFound)
			},
			wantOutcome: eventv1.Outcome_OUTCOME_HTTP_STATUS, wantStatus: http.StatusFound, wantRequests: 1,
		},
		{
			name:      "timeout",
			allow:     true,
			timeoutMS: 1000,
			respond: func(_ http.ResponseWriter, r *http.Request, _ int) {
				<-r.Context().Done()
			},
			wantOutcome: eventv1.Outcome_OUTCOME_TIMEOUT, wantError: "deadline exceeded", wantRequests: 1,
		},
		{
			name:        "loopback blocked without an allowlist",
			allow:       false,
			wantOutcome: eventv1.Outcome_OUTCOME_BLOCKED, wantError: "not allowed", wantRequests: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rc := newReceiver(t, tc.respond)
			ep := newEndpoint(t, rc.srv.URL)
			ep.TimeoutMs = tc.timeoutMS
			e.config.put(ep)
			cfg := testConfig()
			cfg.Schedule = []time.Duration{0, time.Hour} // one attempt in this test
			if !tc.allow {
				cfg.AllowNetworks = nil
			}
			e.startWorker(t, cfg, workerOptions{})
			e.publish(context.Background(), t, newDelivery(ep))

			a := e.attempts(t, 1)[0]
			if a.Outcome != tc.wantOutcome || a.StatusCode != tc.wantStatus {
				t.Errorf("attempt outcome/status = %v/%d, want %v/%d", a.Outcome, a.StatusCode, tc.wantOutcome, tc.wantStatus)
			}
			if !strings.Contains(a.Error, tc.wantError) {
				t.Errorf("attempt error = %q, want it to mention %q", a.Error, tc.wantError)
			}
			if tc.timeoutMS > 0 && a.DurationUs < int64(tc.timeoutMS)*1000 {
				t.Errorf("attempt took %dµs, want at least the %d ms timeout", a.DurationUs, tc.timeoutMS)
			}
			// The attempt is recorded after the request (and any redirect
			// the client followed) completed, so these counts are final.
			if got := rc.count(); got != tc.wantRequests {
				t.Errorf("receiver got %d requests, want %d", got, tc.wantRequests)
			}
			if got := elsewhere.count(); got != 0 {
				t.Errorf("redirect target got %d requests, want 0", got)
			}
		})
	}
}

func TestDisabledAndUnknownEndpointsAreDropped(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	disabled := newEndpoint(t, rc.srv.URL)
	disabled.Enabled = false
	e.config.put(disabled)
	unknown := newEndpoint(t, rc.srv.URL) // never put
	cfg := testConfig()
	cfg.UnknownEndpointGrace = time.Nanosecond
	e.startWorker(t, cfg, workerOptions{})
	e.publish(context.Background(), t, newDelivery(disabled))
	e.publish(context.Background(), t, newDelivery(unknown))

	e.waitDeliveriesEmpty(t)
	if got := rc.count(); got != 0 {
		t.Errorf("receiver got %d requests, want 0", got)
	}
	if got := e.attemptCount(t); got != 0 {
		t.Errorf("ATTEMPTS holds %d records, want 0", got)
	}
}

func TestEndpointArrivingAfterItsDeliveryIsServed(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	ep := newEndpoint(t, rc.srv.URL)
	e.startWorker(t, testConfig(), workerOptions{})
	e.publish(context.Background(), t, newDelivery(ep))
	// The worker's view does not have the endpoint yet (the fanout's view
	// was ahead): the delivery must wait for it rather than be dropped.
	e.config.put(ep)
	rc.next(t)
	e.waitDeliveriesEmpty(t)
}

// TestRedisDownSendsNothingUntilChecked stops Redis. No delivery is sent
// while its completion record cannot be checked — not the one that looks
// fresh either (JetStream's first delivery of it, straight from fanout),
// since a crashed nats-server can deliver completed deliveries again as if
// for the first time — and each goes out once when Redis is back.
func TestRedisDownSendsNothingUntilChecked(t *testing.T) {
	e := newEnv(t)
	freshRC, redoRC := newReceiver(t, nil), newReceiver(t, nil)
	freshEP, redoEP := newEndpoint(t, freshRC.srv.URL), newEndpoint(t, redoRC.srv.URL)
	e.config.put(freshEP)
	e.config.put(redoEP)
	cfg := testConfig()
	cfg.RetryDelay = 100 * time.Millisecond
	e.startWorker(t, cfg, workerOptions{})
	e.redis.Stop()
	ctx := context.Background()
	e.publishDelivery(ctx, t, newDelivery(redoEP), nats.Header{streams.RedoHeader: []string{"1"}})
	e.publish(ctx, t, newDelivery(freshEP))

	// Wait until the worker has looked at them, failed to check Redis,
	// and had them redelivered.
	c, err := e.js.Consumer(ctx, streams.Deliveries, streams.PartitionConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	waitRedelivered(t, c, 2)
	if got := freshRC.count() + redoRC.count(); got != 0 {
		t.Errorf("endpoints got %d requests while Redis was down, want 0", got)
	}
	e.redis.Start()
	freshRC.next(t)
	redoRC.next(t)
	e.waitDeliveriesEmpty(t)
	if got, got2 := freshRC.count(), redoRC.count(); got != 1 || got2 != 1 {
		t.Errorf("deliveries sent %d and %d times, want 1 and 1", got, got2)
	}
}

// waitRedelivered waits until the consumer reports a redelivered message.
func waitRedelivered(t *testing.T, c jetstream.Consumer, n int) {
	t.Helper()
	testenv.WaitFor(t, waitTimeout, func() error {
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumRedelivered < n {
			return fmt.Errorf("no redelivery yet (ack pending %d)", info.NumAckPending)
		}
		return nil
	})
}
