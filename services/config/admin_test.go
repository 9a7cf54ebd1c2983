package config

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
)

func TestOperatorAPIRequiresAdminToken(t *testing.T) {
	h := startService(t)
	tests := []struct {
		name   string
		header map[string]string
	}{
		{"no header", nil},
		{"wrong token", map[string]string{"Authorization": "Bearer not-the-admin-token"}},
		{"not bearer", map[string]string{"Authorization": "Basic " + testAdminToken}},
		{"token as API key", map[string]string{"X-Api-Key": testAdminToken}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, data, hdr := h.request(http.MethodPost, "/admin/v1/tenants", map[string]string{"name": "x"}, tt.header)
			wantError(t, status, data, http.StatusUnauthorized, "unauthorized")
			if hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate header")
			}
		})
	}
	status, data := h.admin(http.MethodGet, "/admin/v1/tenants", nil)
	if status != http.StatusOK {
		t.Fatalf("list tenants: status %d: %s", status, data)
	}
	if got := decode[listPage[Tenant]](t, data).Data; len(got) != 0 {
		t.Errorf("tenants after refused creates = %v, want none", got)
	}
}

func TestTenants(t *testing.T) {
	h := startService(t)

	status, data := h.admin(http.MethodPost, "/admin/v1/tenants", map[string]string{"name": "  Acme Corp "})
	if status != http.StatusCreated {
		t.Fatalf("create tenant: status %d: %s", status, data)
	}
	acme := decode[Tenant](t, data)
	if !ids.Valid(ids.Tenant, acme.ID) {
		t.Errorf("generated tenant id %q is not a ten_ id", acme.ID)
	}
	if acme.Name != "Acme Corp" || acme.CreatedAt.IsZero() {
		t.Errorf("created tenant = %+v, want name %q and a creation time", acme, "Acme Corp")
	}

	status, data = h.admin(http.MethodPost, "/admin/v1/tenants", map[string]string{"id": "beta-2", "name": "Beta"})
	if status != http.StatusCreated {
		t.Fatalf("create tenant with id: status %d: %s", status, data)
	}

	bad := []struct {
		name     string
		body     any
		status   int
		wantCode string
	}{
		{"duplicate id", map[string]string{"id": "beta-2", "name": "Again"}, http.StatusConflict, "conflict"},
		{"id with a dot", map[string]string{"id": "a.b", "name": "x"}, http.StatusUnprocessableEntity, "validation_failed"},
		{"id with a wildcard", map[string]string{"id": "a*", "name": "x"}, http.StatusUnprocessableEntity, "validation_failed"},
		{"id too long", map[string]string{"id": strings.Repeat("a", 65), "name": "x"}, http.StatusUnprocessableEntity, "validation_failed"},
		{"missing name", map[string]string{"id": "gamma"}, http.StatusUnprocessableEntity, "validation_failed"},
		{"name with control characters", map[string]string{"name": "a\x00b"}, http.StatusUnprocessableEntity, "validation_failed"},
		{"unknown field", `{"name":"x","plan":"gold"}`, http.StatusBadRequest, "unknown_field"},
		{"malformed JSON", `{"name":`, http.StatusBadRequest, "invalid_json"},
		{"array body", `["x"]`, http.StatusBadRequest, "invalid_json"},
		{"wrong type", `{"name":5}`, http.StatusBadRequest, "invalid_json"},
		{"trailing data", `{"name":"x"} {"name":"y"}`, http.StatusBadRequest, "invalid_json"},
		{"empty body", ``, http.StatusBadRequest, "invalid_json"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			status, data := h.admin(http.MethodPost, "/admin/v1/tenants", tt.body)
			wantError(t, status, data, tt.status, tt.wantCode)
		})
	}

	status, data = h.admin(http.MethodGet, "/admin/v1/tenants/beta-2", nil)
	if status != http.StatusOK || decode[Tenant](t, data).Name != "Beta" {
		t.Errorf("get tenant beta-2: status %d: %s, want 200 with name Beta", status, data)
	}
	for _, id := range []string{"nobody", "a.b", "*"} {
		status, data = h.admin(http.MethodGet, "/admin/v1/tenants/"+id, nil)
		wantError(t, status, data, http.StatusNotFound, "not_found")
	}

	// Pagination: two tenants exist; pages of one.
	status, data = h.admin(http.MethodGet, "/admin/v1/tenants?limit=1", nil)
	if status != http.StatusOK {
		t.Fatalf("list tenants: status %d: %s", status, data)
	}
	first := decode[listPage[Tenant]](t, data)
	if len(first.Data) != 1 || first.Done || first.Iterator == nil {
		t.Fatalf("first page = %+v, want one tenant, not done, an iterator", first)
	}
	status, data = h.admin(http.MethodGet, "/admin/v1/tenants?limit=1&iterator="+*first.Iterator, nil)
	if status != http.StatusOK {
		t.Fatalf("list tenants page 2: status %d: %s", status, data)
	}
	second := decode[listPage[Tenant]](t, data)
	if len(second.Data) != 1 || !second.Done || second.Data[0].ID == first.Data[0].ID {
		t.Errorf("second page = %+v, want the other tenant and done", second)
	}
	for _, q := range []string{"limit=0", "limit=251", "limit=ten"} {
		status, data = h.admin(http.MethodGet, "/admin/v1/tenants?"+q, nil)
		wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed")
	}
}

func TestAPIKeys(t *testing.T) {
	h := startService(t)
	tenantID, key := h.newTenant("acme")

	if !strings.HasPrefix(key, "phk_") || len(key) != apiKeyLen {
		t.Errorf("API key %q: want phk_ and %d characters", key, apiKeyLen)
	}
	status, data := h.api(key, http.MethodGet, "/v1/endpoints", nil)
	if status != http.StatusOK {
		t.Fatalf("request with a fresh key: status %d: %s", status, data)
	}

	status, data = h.admin(http.MethodGet, "/admin/v1/tenants/"+tenantID+"/api-keys", nil)
	if status != http.StatusOK {
		t.Fatalf("list keys: status %d: %s", status, data)
	}
	if strings.Contains(string(data), key) || strings.Contains(string(data), key[apiKeyShownPart:]) {
		t.Errorf("key list %s contains the secret key", data)
	}
	keys := decode[listPage[APIKey]](t, data).Data
	if len(keys) != 1 || keys[0].Prefix != key[:apiKeyShownPart] || keys[0].TenantID != tenantID {
		t.Fatalf("keys = %+v, want one with prefix %q", keys, key[:apiKeyShownPart])
	}

	// Bad keys.
	badKeys := []struct {
		name   string
		header map[string]string
	}{
		{"missing", nil},
		{"malformed", map[string]string{"X-Api-Key": "hello"}},
		{"unknown", map[string]string{"X-Api-Key": "phk_" + strings.Repeat("A", 43)}},
		{"admin token", map[string]string{"X-Api-Key": testAdminToken}},
	}
	for _, tt := range badKeys {
		t.Run(tt.name, func(t *testing.T) {
			status, data, _ := h.request(http.MethodGet, "/v1/endpoints", nil, tt.header)
			wantError(t, status, data, http.StatusUnauthorized, "unauthorized")
		})
	}

	// Another tenant cannot revoke this key.
	h.newTenant("other")
	status, data = h.admin(http.MethodDelete, "/admin/v1/tenants/other/api-keys/"+keys[0].ID, nil)
	wantError(t, status, data, http.StatusNotFound, "not_found")
	if status, _ := h.api(key, http.MethodGet, "/v1/endpoints", nil); status != http.StatusOK {
		t.Fatalf("key stopped working after a refused revoke: status %d", status)
	}

	status, data = h.admin(http.MethodDelete, "/admin/v1/tenants/"+tenantID+"/api-keys/"+keys[0].ID, nil)
	if status != http.StatusNoContent {
		t.Fatalf("revoke key: status %d: %s", status, data)
	}
	status, data = h.api(key, http.MethodGet, "/v1/endpoints", nil)
	wantError(t, status, data, http.StatusUnauthorized, "unauthorized")
	status, data = h.admin(http.MethodDelete, "/admin/v1/tenants/"+tenantID+"/api-keys/"+keys[0].ID, nil)
	wantError(t, status, data, http.StatusNotFound, "not_found")

	status, data = h.admin(http.MethodPost, "/admin/v1/tenants/nobody/api-keys", nil)
	wantError(t, status, data, http.StatusNotFound, "not_found")
	status, data = h.admin(http.MethodPost, "/admin/v1/tenants/"+tenantID+"/api-keys", `{"nme":"typo"}`)
	wantError(t, status, data, http.StatusBadRequest, "unknown_field")
	status, data = h.admin(http.MethodGet, "/admin/v1/tenants/"+tenantID+"/api-keys", nil)
	if got := decode[listPage[APIKey]](t, data).Data; status != http.StatusOK || len(got) != 0 {
		t.Errorf("keys after revoke and refused creates: status %d, %+v; want none", status, got)
	}
}

func TestEventTypeCatalog(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("acme")

	status, data := h.api(key, http.MethodGet, "/v1/event-types", nil)
	if status != http.StatusOK {
		t.Fatalf("tenant lists catalog: status %d: %s", status, data)
	}
	seeded := decode[listPage[EventType]](t, data).Data
	var names []string
	for _, et := range seeded {
		names = append(names, et.Name)
		if et.Description == "" || !strings.Contains(string(et.ExamplePayload), `"job_id"`) || len(et.JSONSchema) == 0 {
			t.Errorf("seeded %s = %+v, want description, job example and schema", et.Name, et)
		}
	}
	want := "job.cancelled job.completed job.created job.failed job.processing pulsehooks.test"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("seeded catalog = %s, want %s", got, want)
	}

	body := map[string]any{"description": "A page of a job was processed.", "example_payload": map[string]any{"job_id": "job_1", "page": 3}}
	status, data = h.admin(http.MethodPut, "/admin/v1/event-types/job.page_done", body)
	if status != http.StatusCreated {
		t.Fatalf("put new event type: status %d: %s", status, data)
	}
	created := decode[EventType](t, data)
	body["json_schema"] = map[string]any{"type": "object"}
	status, data = h.admin(http.MethodPut, "/admin/v1/event-types/job.page_done", body)
	if status != http.StatusOK {
		t.Fatalf("replace event type: status %d: %s", status, data)
	}
	if got := decode[EventType](t, data); !got.CreatedAt.Equal(created.CreatedAt) || string(got.JSONSchema) != `{"type":"object"}` {
		t.Errorf("replaced = %+v, want created_at kept and the schema set", got)
	}
	// A tenant can subscribe to the new type at once (no rebuild).
	h.newEndpoint(key, map[string]any{"url": "https://example.com/hook", "event_types": []string{"job.page_done"}})

	bad := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"upper-case name", "/admin/v1/event-types/Job.Done", body, http.StatusUnprocessableEntity, "validation_failed"},
		{"empty part", "/admin/v1/event-types/job..done", body, http.StatusUnprocessableEntity, "validation_failed"},
		{"name too long", "/admin/v1/event-types/" + strings.Repeat("a", 65), body, http.StatusUnprocessableEntity, "validation_failed"},
		{"no description", "/admin/v1/event-types/x.y", map[string]any{"example_payload": map[string]any{}}, http.StatusUnprocessableEntity, "validation_failed"},
		{"example not an object", "/admin/v1/event-types/x.y", map[string]any{"description": "d", "example_payload": []int{1}}, http.StatusUnprocessableEntity, "validation_failed"},
		{"example missing", "/admin/v1/event-types/x.y", map[string]any{"description": "d"}, http.StatusUnprocessableEntity, "validation_failed"},
		{"schema not an object", "/admin/v1/event-types/x.y", map[string]any{"description": "d", "example_payload": map[string]any{}, "json_schema": "object"}, http.StatusUnprocessableEntity, "validation_failed"},
		{"invalid schema", "/admin/v1/event-types/x.y", map[string]any{"description": "d", "example_payload": map[string]any{}, "json_schema": map[string]any{"type": "objekt"}}, http.StatusUnprocessableEntity, "validation_failed"},
		{"example fails its schema", "/admin/v1/event-types/x.y", map[string]any{"description": "d", "example_payload": map[string]any{"job_id": 1}, "json_schema": map[string]any{"type": "object", "properties": map[string]any{"job_id": map[string]any{"type": "string"}}}}, http.StatusUnprocessableEntity, "validation_failed"},
		{"example's date-time is not one", "/admin/v1/event-types/x.y", map[string]any{"description": "d", "example_payload": map[string]any{"at": "noon"}, "json_schema": map[string]any{"properties": map[string]any{"at": map[string]any{"format": "date-time"}}}}, http.StatusUnprocessableEntity, "validation_failed"},
		{"unknown field", "/admin/v1/event-types/x.y", `{"description":"d","example_payload":{},"name":"x.y"}`, http.StatusBadRequest, "unknown_field"},
		{"oversized", "/admin/v1/event-types/x.y", `{"description":"` + strings.Repeat("a", 70<<10) + `"}`, http.StatusRequestEntityTooLarge, "body_too_large"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			status, data := h.admin(http.MethodPut, tt.path, tt.body)
			wantError(t, status, data, tt.status, tt.code)
		})
	}

	status, data = h.admin(http.MethodDelete, "/admin/v1/event-types/job.page_done", nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete event type: status %d: %s", status, data)
	}
	status, data = h.admin(http.MethodDelete, "/admin/v1/event-types/job.page_done", nil)
	wantError(t, status, data, http.StatusNotFound, "not_found")
	status, data = h.api(key, http.MethodPost, "/v1/endpoints", map[string]any{"url": "https://example.com/hook", "event_types": []string{"job.page_done"}})
	wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed")

	status, data = h.admin(http.MethodGet, "/admin/v1/event-types", nil)
	if got := len(decode[listPage[EventType]](t, data).Data); status != http.StatusOK || got != 6 {
		t.Errorf("catalog after add and delete: status %d, %d types; want 200 and the 6 seeded", status, got)
	}
}

func TestCatalogSeededOnce(t *testing.T) {
	h := startService(t)
	status, data := h.admin(http.MethodDelete, "/admin/v1/event-types/job.cancelled", nil)
	if status != http.StatusNoContent {
		t.Fatalf("delete seeded type: status %d: %s", status, data)
	}
	h.stop()
	h.start()
	status, data = h.admin(http.MethodGet, "/admin/v1/event-types", nil)
	if status != http.StatusOK {
		t.Fatalf("list: status %d: %s", status, data)
	}
	for _, et := range decode[listPage[EventType]](t, data).Data {
		if et.Name == "job.cancelled" {
			t.Errorf("job.cancelled is back after a restart; an operator's deletion must stick")
		}
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	h := startService(t)
	status, data, hdr := h.request(http.MethodPut, "/v1/endpoints", nil, nil)
	wantError(t, status, data, http.StatusMethodNotAllowed, "method_not_allowed")
	if !strings.Contains(hdr.Get("Allow"), "GET") || !strings.Contains(hdr.Get("Allow"), "POST") {
		t.Errorf("Allow = %q, want GET and POST", hdr.Get("Allow"))
	}
	status, data, _ = h.request(http.MethodGet, "/nope", nil, nil)
	wantError(t, status, data, http.StatusNotFound, "not_found")
	// An unset id in a pasted command: a JSON 404, not ServeMux's redirect.
	status, data, _ = h.request(http.MethodGet, "/v1/endpoints//secret", nil, nil)
	wantError(t, status, data, http.StatusNotFound, "not_found")
	status, _, _ = h.request(http.MethodGet, "/healthz", nil, nil)
	if status != http.StatusOK {
		t.Errorf("GET /healthz = %d, want 200", status)
	}
}
