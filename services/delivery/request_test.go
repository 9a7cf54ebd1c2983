package delivery

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pulsehooks/pulsehooks/pkg/signature"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := signature.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBuildRequest(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	current, rotated, expired := newSecret(t), newSecret(t), newSecret(t)
	ep := &configv1.Endpoint{
		Id:       "ep_1",
		TenantId: "ten_1",
		Url:      "https://hooks.example.com/in?x=1",
		Headers: map[string]string{
			"X-Custom":          "custom value",
			"Authorization":     "Bearer custom", // replaced by basic auth below
			"Content-Type":      "text/plain",
			"content-length":    "1",
			"Webhook-Id":        "forged",
			"webhook-signature": "v1,forged",
			"Host":              "evil.example",
			"Connection":        "close",
			"Transfer-Encoding": "chunked",
			"User-Agent":        "forged",
			"Traceparent":       "00-forged",
			"Bad Name":          "x",
			"X-Split":           "a\r\nInjected: yes",
		},
		BasicAuth: &configv1.BasicAuth{Username: "user", Password: "pa:ss"},
		Secrets: []*configv1.Secret{
			{Key: current},
			{Key: rotated, ExpiresAt: timestamppb.New(now.Add(time.Hour))},
			{Key: expired, ExpiresAt: timestamppb.New(now.Add(-time.Second))},
		},
		Enabled: true,
	}
	d := &eventv1.Delivery{MessageId: "msg_1", TenantId: "ten_1", EndpointId: "ep_1", EventType: "job.completed",
		Payload: []byte(`{"type":"job.completed","data":{"n":1}}`)}
	req, skipped, err := buildRequest(context.Background(), ep, d, "pulsehooks/test", now)
	if err != nil {
		t.Fatalf("buildRequest: %v", err)
	}
	if req.Method != http.MethodPost || req.URL.String() != ep.Url {
		t.Errorf("request = %s %s, want POST %s", req.Method, req.URL, ep.Url)
	}
	body, _ := io.ReadAll(req.Body)
	if string(body) != string(d.Payload) {
		t.Errorf("body = %q, want the payload %q", body, d.Payload)
	}
	for name, want := range map[string]string{
		"Webhook-Id":        "msg_1",
		"Webhook-Timestamp": strconv.FormatInt(now.Unix(), 10),
		"Content-Type":      "application/json",
		"User-Agent":        "pulsehooks/test",
		"X-Custom":          "custom value",
		"Content-Length":    "",
		"Host":              "",
		"Connection":        "",
		"Transfer-Encoding": "",
		"Traceparent":       "",
		"Bad Name":          "",
		"X-Split":           "",
	} {
		if got := req.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if user, pass, ok := req.BasicAuth(); !ok || user != "user" || pass != "pa:ss" {
		t.Errorf("basic auth = %q, %q, %v; want user, pa:ss", user, pass, ok)
	}
	slices.Sort(skipped)
	wantSkipped := []string{"Bad Name", "Connection", "Content-Type", "Host", "Traceparent", "Transfer-Encoding", "User-Agent", "Webhook-Id", "X-Split", "content-length", "webhook-signature"}
	if !slices.Equal(skipped, wantSkipped) {
		t.Errorf("skipped = %q, want %q", skipped, wantSkipped)
	}
	sigs := strings.Fields(req.Header.Get(signature.HeaderSignature))
	if len(sigs) != 2 {
		t.Fatalf("webhook-signature has %d signatures, want 2 (current and rotated; not the expired one)", len(sigs))
	}
	for i, secret := range []string{current, rotated} {
		key, _ := signature.ParseSecret(secret)
		if want := signature.Sign(key, "msg_1", now, d.Payload); sigs[i] != want {
			t.Errorf("signature %d = %q, want %q", i, sigs[i], want)
		}
	}
}

func TestBuildRequestWithoutUsableSecret(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		secrets []*configv1.Secret
	}{
		{"none", nil},
		{"all expired", []*configv1.Secret{{Key: newSecret(t), ExpiresAt: timestamppb.New(now.Add(-time.Minute))}}},
		{"malformed", []*configv1.Secret{{Key: "whsec_%%%"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := &configv1.Endpoint{Id: "ep_1", Url: "https://example.com/", Secrets: tc.secrets}
			_, _, err := buildRequest(context.Background(), ep, &eventv1.Delivery{MessageId: "msg_1"}, "ua", now)
			if !errors.Is(err, errNoSecret) {
				t.Errorf("buildRequest error = %v, want errNoSecret", err)
			}
		})
	}
}
