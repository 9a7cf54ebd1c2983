package config

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestExpirePreviousRetiresEveryEarlierSecret(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	ep := h.newEndpoint(key, map[string]any{"url": "https://example.com/hooks"})
	path := "/v1/endpoints/" + ep.ID + "/secret"

	status, data := h.api(key, http.MethodGet, path, nil)
	first := decode[secretView](t, data)
	if status != http.StatusOK || len(first.Previous) != 0 {
		t.Fatalf("GET secret = %d %s, want 200 with no previous secrets", status, data)
	}
	// Two rotations with grace: three secrets sign.
	for _, grace := range []int{3600, 7200} {
		if status, data := h.api(key, http.MethodPost, path+"/rotate", map[string]any{"grace_period_seconds": grace}); status != http.StatusOK {
			t.Fatalf("rotate with grace %d: %d %s", grace, status, data)
		}
	}
	status, data = h.api(key, http.MethodGet, path, nil)
	got := decode[secretView](t, data)
	if status != http.StatusOK || len(got.Previous) != 2 {
		t.Fatalf("GET secret after two rotations = %d %s, want 2 previous secrets", status, data)
	}
	if strings.Contains(string(data), first.Key) || strings.Contains(string(data), strings.TrimPrefix(first.Key, "whsec_")) {
		t.Errorf("GET secret %s reveals a retired secret", data)
	}
	for _, p := range got.Previous {
		if !strings.HasPrefix(p.Fingerprint, "sha256:") || len(p.Fingerprint) != len("sha256:")+16 || !p.ExpiresAt.After(time.Now()) {
			t.Errorf("previous secret %+v, want a sha256: fingerprint and a future expiry", p)
		}
	}
	if got.Previous[1].Fingerprint != secretFingerprint(first.Key) {
		t.Errorf("last previous fingerprint = %s, want the first secret's %s (it expires soonest)", got.Previous[1].Fingerprint, secretFingerprint(first.Key))
	}

	// Refused bodies change nothing.
	for _, body := range []map[string]any{
		{"expire_previous": "later"},
		{"expire_previous": "now", "grace_period_seconds": 0},
	} {
		status, data := h.api(key, http.MethodPost, path+"/rotate", body)
		if e := wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed"); e.Field != "expire_previous" {
			t.Errorf("rotate %v: field %q, want expire_previous", body, e.Field)
		}
	}

	status, data = h.api(key, http.MethodPost, path+"/rotate", map[string]any{"expire_previous": "now"})
	rotated := decode[secretView](t, data)
	if status != http.StatusOK || len(rotated.Previous) != 0 {
		t.Fatalf("rotate with expire_previous now = %d %s, want 200 with no previous secrets", status, data)
	}
	internal, err := h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if secs := internal.GetSecrets(); len(secs) != 1 || secs[0].GetKey() != rotated.Key || secs[0].GetExpiresAt() != nil {
		t.Errorf("secrets delivery gets = %v, want only the new current secret", secs)
	}
}
