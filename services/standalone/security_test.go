package standalone_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// TestRevokedSecretsAndSecretHeadersEndToEnd: after rotations with grace,
// a rotation with expire_previous "now" leaves deliveries with exactly one
// signature, from the new secret; a secret custom header reaches the
// receiver and is redacted in the attempt record.
func TestRevokedSecretsAndSecretHeadersEndToEnd(t *testing.T) {
	redis := testenv.StartRedis(t)
	sys := startSystem(t, sysOptions{dataDir: t.TempDir(), redisURL: redis.URL()})
	recv := newReceiver(t)
	a := sys.createTenant(t, "acme")
	hA := map[string]string{"x-api-key": a.Key}
	ep := sys.createEndpoint(t, a, map[string]any{"url": recv.url("in"), "headers": map[string]any{
		"X-Team":    "billing",
		"X-Partner": map[string]any{"value": "partner-value-19af", "secret": true},
	}})
	base := sys.svc.ConfigURL() + "/v1/endpoints/" + ep.ID

	var old []string // every secret before the revoking rotation
	var sec struct {
		Key      string `json:"key"`
		Previous []struct {
			Fingerprint string    `json:"fingerprint"`
			ExpiresAt   time.Time `json:"expires_at"`
		} `json:"previous"`
	}
	for range 2 {
		if code := call(t, "POST", base+"/secret/rotate", hA, map[string]any{"grace_period_seconds": 3600}, &sec); code != http.StatusOK {
			t.Fatalf("rotate with grace: %d", code)
		}
		old = append(old, sec.Key)
	}
	if code := call(t, "GET", base+"/secret", hA, nil, &sec); code != http.StatusOK || len(sec.Previous) != 2 {
		t.Fatalf("GET secret = %d %+v, want 2 retired secrets still signing", code, sec)
	}
	if code := call(t, "POST", base+"/secret/rotate", hA, map[string]any{"expire_previous": "now"}, &sec); code != http.StatusOK || len(sec.Previous) != 0 {
		t.Fatalf("rotate expire_previous now = %d %+v, want no retired secrets", code, sec)
	}
	current := sec.Key

	// Delivery hears of the rotation over Watch within milliseconds; send
	// test events until one arrives signed with the new secret alone.
	var got received
	var msgID string
	testenv.WaitFor(t, 30*time.Second, func() error {
		var sent struct {
			MessageID string `json:"message_id"`
		}
		if code := call(t, "POST", base+"/test", hA, map[string]any{}, &sent); code != http.StatusAccepted {
			return fmt.Errorf("test send: %d", code)
		}
		var ok bool
		testenv.WaitFor(t, 30*time.Second, func() error {
			for _, r := range recv.requests("in") {
				if r.Header.Get(signature.HeaderID) == sent.MessageID {
					got, ok = r, true
					return nil
				}
			}
			return fmt.Errorf("test event %s not received", sent.MessageID)
		})
		msgID = sent.MessageID
		if n := len(strings.Fields(got.Header.Get(signature.HeaderSignature))); !ok || n != 1 {
			return fmt.Errorf("delivery carries %d signatures, want 1", n)
		}
		return nil
	})
	verify(t, current, got)
	for _, k := range append(old, ep.Secret) {
		if k == current {
			t.Fatal("the revoking rotation reused a secret")
		}
		v, err := signature.NewVerifier(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(got.Header, got.Body); err == nil {
			t.Errorf("a revoked secret still verifies the delivery")
		}
	}
	if got.Header.Get("X-Partner") != "partner-value-19af" || got.Header.Get("X-Team") != "billing" {
		t.Errorf("receiver got X-Partner %q, X-Team %q; want the real values", got.Header.Get("X-Partner"), got.Header.Get("X-Team"))
	}

	var attempts apiList[apiAttempt]
	testenv.WaitFor(t, 30*time.Second, func() error {
		if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/messages/"+msgID+"/attempts", hA, nil, &attempts); code != http.StatusOK || len(attempts.Data) == 0 {
			return fmt.Errorf("attempts of %s: %d %+v", msgID, code, attempts)
		}
		return nil
	})
	var full apiAttempt
	if code := call(t, "GET", sys.svc.ConfigURL()+"/v1/attempts/"+attempts.Data[0].ID, hA, nil, &full); code != http.StatusOK {
		t.Fatalf("GET attempt: %d", code)
	}
	headers := map[string]string{}
	for _, h := range full.RequestHeaders {
		headers[h.Name] = h.Value
	}
	if headers["x-partner"] != "REDACTED" || headers["x-team"] != "billing" {
		t.Errorf("recorded request headers %v, want x-partner REDACTED and x-team billing", headers)
	}
}
