package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

func TestCheckHeaders(t *testing.T) {
	tests := []struct {
		name      string
		headers   map[string]string
		basicAuth bool
		wantField string // "" means valid
	}{
		{"none", nil, false, ""},
		{"custom", map[string]string{"X-Tenant": "a", "Authorization": "Bearer t"}, false, ""},
		{"tab in value", map[string]string{"X-A": "a\tb"}, false, ""},
		{"authorization with basic auth", map[string]string{"authorization": "x"}, true, "headers.authorization"},
		{"webhook prefix", map[string]string{"Webhook-Anything": "x"}, false, "headers.Webhook-Anything"},
		{"proxy prefix", map[string]string{"Proxy-Connection": "x"}, false, "headers.Proxy-Connection"},
		{"traceparent", map[string]string{"traceparent": "x"}, false, "headers.traceparent"},
		{"content-language, dropped by delivery", map[string]string{"Content-Language": "en"}, false, "headers.Content-Language"},
		{"http2-settings, dropped by delivery", map[string]string{"HTTP2-Settings": "x"}, false, "headers.HTTP2-Settings"},
		{"colon in name", map[string]string{"X:A": "x"}, false, "headers.X:A"},
		{"empty name", map[string]string{"": "x"}, false, "headers"},
		{"long name", map[string]string{strings.Repeat("x", 129): "x"}, false, "headers"},
		{"long value", map[string]string{"X-A": strings.Repeat("v", 4097)}, false, "headers.X-A"},
		{"NUL in value", map[string]string{"X-A": "a\x00b"}, false, "headers.X-A"},
		{"DEL in value", map[string]string{"X-A": "a\x7fb"}, false, "headers.X-A"},
		{"invalid UTF-8", map[string]string{"X-A": "\xff"}, false, "headers.X-A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHeaders(tt.headers, tt.basicAuth)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("checkHeaders = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.wantField {
				t.Fatalf("checkHeaders = %v, want a validation error on %q", err, tt.wantField)
			}
		})
	}
}

func TestCheckSigningSecret(t *testing.T) {
	b64 := func(n int) string {
		var buf strings.Builder
		for range n / 3 {
			buf.WriteString("QUFB")
		}
		return buf.String()
	}
	tests := []struct {
		secret string
		valid  bool
	}{
		{"whsec_" + b64(24), true},
		{"whsec_" + b64(33), true},
		{"whsec_" + b64(63), true},
		{"whsec_" + b64(21), false},
		{"whsec_" + b64(66), false},
		{"whsec_" + strings.TrimSuffix("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", "="), false},
		{"whsec_" + strings.Repeat("-_", 20), false},
		{b64(24), false},
		{"WHSEC_" + b64(24), false},
		{"", false},
	}
	for _, tt := range tests {
		err := checkSigningSecret("secret", tt.secret)
		if (err == nil) != tt.valid {
			t.Errorf("checkSigningSecret(%q) = %v, want valid %v", tt.secret, err, tt.valid)
		}
	}
	for range 3 {
		s, err := newSigningSecret()
		if err != nil || checkSigningSecret("secret", s) != nil {
			t.Errorf("newSigningSecret = %q, %v; want a valid secret", s, err)
		}
	}
}

func TestPruneSecrets(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	sec := func(id byte, exp *time.Time) secretRecord { return secretRecord{Sealed: []byte{id}, ExpiresAt: exp} }
	ids := func(ss []secretRecord) []byte {
		var out []byte
		for _, s := range ss {
			out = append(out, s.Sealed[0])
		}
		return out
	}
	tests := []struct {
		name string
		in   []secretRecord
		want []byte
	}{
		{"current only", []secretRecord{sec(1, nil)}, []byte{1}},
		{"expired dropped", []secretRecord{sec(1, nil), sec(2, at(-time.Second)), sec(3, at(time.Hour))}, []byte{1, 3}},
		{"expiring now dropped", []secretRecord{sec(1, nil), sec(2, at(0))}, []byte{1}},
		{"latest expiry kept first", []secretRecord{sec(1, nil), sec(2, at(time.Hour)), sec(3, at(3*time.Hour)), sec(4, at(2*time.Hour))}, []byte{1, 3, 4, 2}},
		{"capped, soonest dropped", []secretRecord{
			sec(1, nil), sec(2, at(1*time.Hour)), sec(3, at(2*time.Hour)), sec(4, at(3*time.Hour)),
			sec(5, at(4*time.Hour)), sec(6, at(5*time.Hour)), sec(7, at(6*time.Hour)),
		}, []byte{1, 7, 6, 5, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(pruneSecrets(tt.in, now)); !bytes.Equal(got, tt.want) {
				t.Errorf("pruneSecrets kept %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	valid := Config{AdminToken: "0123456789abcdef", MasterKey: testMasterKey, InternalToken: "internal"}
	got, err := valid.withDefaults()
	if err != nil {
		t.Fatalf("withDefaults: %v", err)
	}
	if got.HTTPAddr != ":8080" || got.GRPCAddr != ":9090" || got.Replicas != 1 || got.PortalLinkTTL != 15*time.Minute ||
		got.SessionTTL != 24*time.Hour || got.MaxBodyBytes != 64<<10 || got.AttemptLogDir != "attemptlog" || got.AttemptRetention != 30*24*time.Hour {
		t.Errorf("defaults = %+v", got)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no admin token", func(c *Config) { c.AdminToken = "" }, "AdminToken is required"},
		{"short admin token", func(c *Config) { c.AdminToken = "short" }, "at least 16"},
		{"no master key", func(c *Config) { c.MasterKey = nil }, "MasterKey"},
		{"short master key", func(c *Config) { c.MasterKey = testMasterKey[:16] }, "MasterKey"},
		{"replicas", func(c *Config) { c.Replicas = 7 }, "replicas must be between 1 and 5"},
		{"public URL scheme", func(c *Config) { c.PublicURL = "ftp://x" }, "PublicURL"},
		{"public URL with query", func(c *Config) { c.PublicURL = "https://x/?a=1" }, "PublicURL"},
		{"tiny TTL", func(c *Config) { c.PortalLinkTTL = time.Millisecond }, "PortalLinkTTL"},
		{"tiny body limit", func(c *Config) { c.MaxBodyBytes = 10 }, "MaxBodyBytes"},
		{"tiny attempt retention", func(c *Config) { c.AttemptRetention = time.Minute }, "AttemptRetention"},
		{"no internal token on every interface", func(c *Config) { c.InternalToken = "" }, "PULSEHOOKS_INTERNAL_TOKEN"},
		{"no internal token on 0.0.0.0", func(c *Config) { c.InternalToken, c.GRPCAddr = "", "0.0.0.0:9090" }, "PULSEHOOKS_INTERNAL_TOKEN"},
		{"no internal token on [::]", func(c *Config) { c.InternalToken, c.GRPCAddr = "", "[::]:9090" }, "PULSEHOOKS_INTERNAL_TOKEN"},
		{"no internal token on a host name", func(c *Config) { c.InternalToken, c.GRPCAddr = "", "config.internal:9090" }, "PULSEHOOKS_INTERNAL_TOKEN"},
		{"no internal token on a private IP", func(c *Config) { c.InternalToken, c.GRPCAddr = "", "10.0.0.5:9090" }, "PULSEHOOKS_INTERNAL_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.mutate(&c)
			if _, err := c.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("withDefaults = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLoopbackGRPCNeedsNoInternalToken(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:9090", "127.0.0.1:0", "[::1]:9090", "localhost:9090", "LOCALHOST:0", "127.1.2.3:9090"} {
		t.Run(addr, func(t *testing.T) {
			c := Config{AdminToken: "0123456789abcdef", MasterKey: testMasterKey, GRPCAddr: addr}
			if _, err := c.withDefaults(); err != nil {
				t.Errorf("withDefaults with GRPCAddr %q and no internal token = %v, want nil", addr, err)
			}
		})
	}
}

func TestNewRefusesBadConfigAndDeps(t *testing.T) {
	if _, err := New(t.Context(), Config{MasterKey: testMasterKey}, Deps{}); err == nil || !strings.Contains(err.Error(), "AdminToken") {
		t.Errorf("New without admin token = %v, want an error about AdminToken", err)
	}
	if _, err := New(t.Context(), Config{AdminToken: testAdminToken, MasterKey: testMasterKey, GRPCAddr: "127.0.0.1:0"}, Deps{}); err == nil || !strings.Contains(err.Error(), "NATS") {
		t.Errorf("New without NATS = %v, want an error about NATS", err)
	}
	if _, err := New(t.Context(), Config{AdminToken: testAdminToken, MasterKey: testMasterKey, GRPCAddr: ":0"}, Deps{}); err == nil || !strings.Contains(err.Error(), "PULSEHOOKS_INTERNAL_TOKEN") {
		t.Errorf("New with gRPC on every interface and no internal token = %v, want an error naming PULSEHOOKS_INTERNAL_TOKEN", err)
	}
}

func TestWaitAppliedAndLoaded(t *testing.T) {
	st := newState(1)
	if err := st.waitApplied(t.Context(), BucketTenants, 5); err != nil {
		t.Fatalf("waitApplied with watchers stopped = %v, want nil at once", err)
	}
	st.setRunning(true)
	done := make(chan error, 1)
	go func() { done <- st.waitApplied(t.Context(), BucketTenants, 2) }()
	st.markLoaded()
	st.putTenant(&configv1.Tenant{Id: "t1", Name: "one", Revision: 1})
	select {
	case err := <-done:
		t.Fatalf("waitApplied(2) returned %v after revision 1", err)
	case <-time.After(20 * time.Millisecond):
	}
	st.deleteTenant(2, "t1")
	if err := <-done; err != nil {
		t.Fatalf("waitApplied(2) = %v after revision 2", err)
	}
	if _, ok := st.tenant("t1"); ok {
		t.Errorf("tenant t1 still present after its delete")
	}
}
