package config

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	"github.com/pulsehooks/pulsehooks/pkg/testenv"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

func TestDisableEndpointRPC(t *testing.T) {
	h := startService(t)
	tenant, key := h.newTenant("acme")
	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/hook"})
	client := dialConfig(t, h.svc.GRPCAddr(), testInternalToken)
	v := runView(t, client, configv1.Kind_KIND_ENDPOINT)
	ctx := context.Background()

	resp, err := client.DisableEndpoint(ctx, &configv1.DisableEndpointRequest{TenantId: tenant, EndpointId: ep.ID, Reason: "410 Gone\nfrom https://example.com/hook"})
	if err != nil {
		t.Fatalf("DisableEndpoint: %v", err)
	}
	const wantReason = "410 Gone from https://example.com/hook"
	if !resp.GetChanged() || resp.GetEndpoint().GetEnabled() || resp.GetEndpoint().GetDisabledReason() != wantReason {
		t.Errorf("DisableEndpoint = changed %v, enabled %v, reason %q; want true, false, %q",
			resp.GetChanged(), resp.GetEndpoint().GetEnabled(), resp.GetEndpoint().GetDisabledReason(), wantReason)
	}
	if resp.GetEndpoint().GetRevision() <= 1 || len(resp.GetEndpoint().GetSecrets()) != 1 {
		t.Errorf("returned endpoint = revision %d, %d secrets; want a new revision and its secret", resp.GetEndpoint().GetRevision(), len(resp.GetEndpoint().GetSecrets()))
	}
	// Watch subscribers hear of it.
	testenv.WaitFor(t, 10*time.Second, func() error {
		got, ok := v.Endpoint(ep.ID)
		if !ok || got.GetEnabled() || got.GetDisabledReason() != wantReason {
			return fmt.Errorf("view has endpoint %v (found %v), want it disabled with the reason", got, ok)
		}
		return nil
	})
	// The tenant sees it and why.
	code, body := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	if got := decode[endpointView](t, body); code != http.StatusOK || got.Enabled || got.DisabledReason != wantReason {
		t.Errorf("GET endpoint = %d %+v, want it disabled with the reason", code, got)
	}

	// Again: nothing changes.
	again, err := client.DisableEndpoint(ctx, &configv1.DisableEndpointRequest{TenantId: tenant, EndpointId: ep.ID, Reason: "other"})
	if err != nil {
		t.Fatalf("second DisableEndpoint: %v", err)
	}
	if again.GetChanged() || again.GetEndpoint().GetDisabledReason() != wantReason || again.GetEndpoint().GetRevision() != resp.GetEndpoint().GetRevision() {
		t.Errorf("second DisableEndpoint = changed %v, reason %q, revision %d; want false, the first reason, revision %d",
			again.GetChanged(), again.GetEndpoint().GetDisabledReason(), again.GetEndpoint().GetRevision(), resp.GetEndpoint().GetRevision())
	}

	// Re-enabled by the tenant, the reason goes; a later disable without a
	// reason gets the default one.
	if code, body := h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"enabled": true}); code != http.StatusOK {
		t.Fatalf("PATCH enabled: %d %s", code, body)
	}
	third, err := client.DisableEndpoint(ctx, &configv1.DisableEndpointRequest{TenantId: tenant, EndpointId: ep.ID, Reason: strings.Repeat("é", 200)})
	if err != nil {
		t.Fatalf("third DisableEndpoint: %v", err)
	}
	if r := third.GetEndpoint().GetDisabledReason(); !third.GetChanged() || len(r) > maxDisabledReason || !strings.HasPrefix(r, "éé") || !strings.HasSuffix(r, "é") {
		t.Errorf("third DisableEndpoint = changed %v, reason of %d bytes %q; want true and at most %d bytes of whole characters", third.GetChanged(), len(r), r, maxDisabledReason)
	}

	for _, tc := range []struct {
		name string
		req  *configv1.DisableEndpointRequest
		want codes.Code
	}{
		{"unknown endpoint", &configv1.DisableEndpointRequest{TenantId: tenant, EndpointId: ids.New(ids.Endpoint)}, codes.NotFound},
		{"another tenant's endpoint", &configv1.DisableEndpointRequest{TenantId: "other", EndpointId: ep.ID}, codes.NotFound},
		{"no endpoint id", &configv1.DisableEndpointRequest{TenantId: tenant}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.DisableEndpoint(ctx, tc.req)
			if got := status.Code(err); got != tc.want {
				t.Errorf("DisableEndpoint = %v, want code %v", err, tc.want)
			}
		})
	}
}

func TestCleanReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", defaultDisabledReason},
		{"  \t ", defaultDisabledReason},
		{"410 Gone", "410 Gone"},
		{"a\x00b\nc", "a b c"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	} {
		if got := cleanReason(tc.in); got != tc.want {
			t.Errorf("cleanReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
