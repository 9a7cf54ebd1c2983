package config

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestDataSurvivesRestart(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	ep := h.newEndpoint(key, map[string]any{
		"url": "https://example.com/hook", "event_types": []string{"job.failed"},
		"basic_auth": map[string]string{"username": "u", "password": "pw"},
	})
	_, epBefore := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	_, secretBefore := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID+"/secret", nil)

	h.stop()
	h.nats.Restart()
	h.start()

	status, data := h.admin(http.MethodGet, "/admin/v1/tenants/acme", nil)
	if status != http.StatusOK {
		t.Fatalf("tenant after restart: status %d: %s", status, data)
	}
	status, data = h.admin(http.MethodGet, "/admin/v1/tenants/acme/api-keys", nil)
	if got := decode[listPage[APIKey]](t, data).Data; status != http.StatusOK || len(got) != 1 {
		t.Errorf("API keys after restart: status %d, %+v; want one", status, got)
	}
	status, epAfter := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	if status != http.StatusOK || !bytes.Equal(epAfter, epBefore) {
		t.Errorf("endpoint after restart (key still authenticating): status %d\n got %s\nwant %s", status, epAfter, epBefore)
	}
	_, secretAfter := h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID+"/secret", nil)
	if !bytes.Equal(secretAfter, secretBefore) {
		t.Errorf("secret after restart = %s, want %s", secretAfter, secretBefore)
	}
	internal, err := h.svc.store.GetEndpoint(t.Context(), "acme", ep.ID)
	if err != nil || internal.GetBasicAuth().GetPassword() != "pw" {
		t.Errorf("password after restart = %q (%v), want %q", internal.GetBasicAuth().GetPassword(), err, "pw")
	}
}

func TestRefusesWrongMasterKeyAtStart(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	h.newEndpoint(key, map[string]any{"url": "https://example.com/hook"})
	h.stop()

	cfg := h.cfg
	cfg.MasterKey = bytes.Repeat([]byte{0x17}, 32)
	svc, err := New(t.Context(), cfg, Deps{NATS: h.nats.Conn(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	err = svc.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "PULSEHOOKS_MASTER_KEY") {
		t.Fatalf("Run with another master key = %v, want an error naming PULSEHOOKS_MASTER_KEY", err)
	}
}

func TestSecretsAreSealedAtRest(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")
	secret := "whsec_" + strings.Repeat("c2VjcmV0", 6) // base64 of "secret"×6
	password := "correct-horse-battery-staple"
	a := h.newEndpoint(key, map[string]any{"url": "https://example.com/a", "secret": secret, "basic_auth": map[string]string{"username": "u", "password": password}})
	b := h.newEndpoint(key, map[string]any{"url": "https://example.com/b"})

	kv, err := h.nats.JetStream(t).KeyValue(t.Context(), BucketEndpoints)
	if err != nil {
		t.Fatal(err)
	}
	entryA, err := kv.Get(t.Context(), endpointKey("acme", a.ID))
	if err != nil {
		t.Fatal(err)
	}
	raw := entryA.Value()
	for _, plain := range []string{secret, strings.TrimPrefix(secret, "whsec_"), password} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("raw KV record contains %q: %s", plain, raw)
		}
	}
	if !bytes.Contains(raw, []byte(`"url":"https://example.com/a"`)) {
		t.Errorf("raw KV record is not readable JSON with the URL: %s", raw)
	}

	// A sealed secret moved into another endpoint's record does not open.
	entryB, err := kv.Get(t.Context(), endpointKey("acme", b.ID))
	if err != nil {
		t.Fatal(err)
	}
	recA := decode[endpointRecord](t, entryA.Value())
	recB := decode[endpointRecord](t, entryB.Value())
	recB.Secrets = recA.Secrets
	if _, err := h.svc.store.endpointProto(&recB, entryB.Revision()); err == nil {
		t.Errorf("endpoint B opened endpoint A's sealed secret; associated data must bind it to A")
	}
	recA.BasicAuth.SealedPassword = recA.Secrets[0].Sealed
	if _, err := h.svc.store.endpointProto(&recA, entryA.Revision()); err == nil {
		t.Errorf("a sealed secret opened as a basic-auth password; associated data must bind the field")
	}
	// No stored revision of the record holds the password either.
	hist, err := kv.History(t.Context(), endpointKey("acme", a.ID))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal(err)
	}
	for _, e := range hist {
		if bytes.Contains(e.Value(), []byte(password)) {
			t.Errorf("revision %d of the record contains the password", e.Revision())
		}
	}
}
