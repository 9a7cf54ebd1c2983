package webhookheaders

import "testing"

func TestReserved(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"webhook-signature", true},
		{"Webhook-Id", true},
		{"Content-Type", true},
		{"Content-Language", true},
		{"content-length", true},
		{"Host", true},
		{"User-Agent", true},
		{"traceparent", true},
		{"TraceState", true},
		{"Expect", true},
		{"Connection", true},
		{"Keep-Alive", true},
		{"TE", true},
		{"Trailer", true},
		{"Transfer-Encoding", true},
		{"Upgrade", true},
		{"HTTP2-Settings", true},
		{"Proxy-Authorization", true},
		{"Proxy-Connection", true},
		{"Authorization", false},
		{"X-Tenant", false},
		{"Accept", false},
		{"X-Webhook", false},
		{"Contents", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Reserved(tt.name); got != tt.want {
				t.Errorf("Reserved(%q) = %v, want %v", tt.name, got, tt.want)
			}
			if got := Why(tt.name) != ""; got != tt.want {
				t.Errorf("Why(%q) = %q, want a reason: %v", tt.name, Why(tt.name), tt.want)
			}
		})
	}
}

func TestCredential(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"Authorization", true},
		{"cookie", true},
		{"Set-Cookie", true},
		{"X-Api-Key", true},
		{"X-Auth-User", true},
		{"X-Access-Token", true},
		{"X-SECRET", true},
		{"Apikey", true},
		{"X-Tenant", false},
		{"Accept", false},
		{"X-Request-Id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Credential(tt.name); got != tt.want {
				t.Errorf("Credential(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
