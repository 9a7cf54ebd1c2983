package config

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/testenv"
)

// countEndpoints lists a tenant's endpoints through the API.
func countEndpoints(t *testing.T, h *harness, key string) int {
	t.Helper()
	n, after := 0, ""
	for {
		status, data := h.api(key, http.MethodGet, "/v1/endpoints?limit=250&iterator="+after, nil)
		if status != http.StatusOK {
			t.Fatalf("list endpoints: status %d: %s", status, data)
		}
		page := decode[listPage[endpointView]](t, data)
		n += len(page.Data)
		if page.Done || len(page.Data) == 0 || page.Iterator == nil {
			return n
		}
		after = *page.Iterator
	}
}

func TestEndpointQuotaHoldsUnderConcurrency(t *testing.T) {
	h := startService(t)
	_, key := h.newTenant("crowd")
	body := map[string]any{"url": "http://127.0.0.1:9/hook"}

	const attempts = 500
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		messages = map[string]int{}
	)
	for range attempts {
		wg.Go(func() {
			status, data := h.api(key, http.MethodPost, "/v1/endpoints", body)
			mu.Lock()
			defer mu.Unlock()
			statuses[status]++
			if status == http.StatusUnprocessableEntity {
				e := decode[errorBody](t, data).Error
				messages[e.Code+": "+e.Message]++
			}
		})
	}
	wg.Wait()
	want := map[int]int{http.StatusCreated: DefaultQuotaEndpoints, http.StatusUnprocessableEntity: attempts - DefaultQuotaEndpoints}
	if fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Fatalf("statuses of %d parallel creates = %v, want %v", attempts, statuses, want)
	}
	wantMsg := "quota_exceeded: tenant crowd is limited to 100 endpoints; delete one or ask the operator to raise the quota"
	if len(messages) != 1 || messages[wantMsg] != attempts-DefaultQuotaEndpoints {
		t.Errorf("422 answers = %v, want %d × %q", messages, attempts-DefaultQuotaEndpoints, wantMsg)
	}
	if got := countEndpoints(t, h, key); got != DefaultQuotaEndpoints {
		t.Errorf("tenant has %d endpoints, want %d", got, DefaultQuotaEndpoints)
	}

	// Deleting an endpoint frees its slot, and only that one.
	status, data := h.api(key, http.MethodGet, "/v1/endpoints?limit=1", nil)
	if status != http.StatusOK {
		t.Fatalf("list: %d %s", status, data)
	}
	victim := decode[listPage[endpointView]](t, data).Data[0].ID
	if status, data := h.api(key, http.MethodDelete, "/v1/endpoints/"+victim, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, data)
	}
	if status, data := h.api(key, http.MethodDelete, "/v1/endpoints/"+victim, nil); status != http.StatusNotFound {
		t.Fatalf("second delete: %d %s, want 404", status, data)
	}
	h.newEndpoint(key, body)
	status, data = h.api(key, http.MethodPost, "/v1/endpoints", body)
	wantError(t, status, data, http.StatusUnprocessableEntity, "quota_exceeded")

	// The operator raises the tenant's quota.
	status, data = h.admin(http.MethodPatch, "/admin/v1/tenants/crowd", map[string]any{"quotas": map[string]int{"endpoints": 103}})
	if status != http.StatusOK {
		t.Fatalf("PATCH tenant quotas: %d %s", status, data)
	}
	if got := decode[Tenant](t, data); got.Quotas == nil || got.Quotas.Endpoints == nil || *got.Quotas.Endpoints != 103 {
		t.Fatalf("PATCH answered %s, want quotas.endpoints 103", data)
	}
	status, data = h.admin(http.MethodGet, "/admin/v1/tenants/crowd", nil)
	if status != http.StatusOK || !strings.Contains(string(data), `"quotas":{"endpoints":103}`) {
		t.Fatalf("GET tenant = %d %s, want quotas.endpoints 103", status, data)
	}
	for i := range 3 {
		if status, data := h.api(key, http.MethodPost, "/v1/endpoints", body); status != http.StatusCreated {
			t.Fatalf("create %d after raising the quota: %d %s", i, status, data)
		}
	}
	status, data = h.api(key, http.MethodPost, "/v1/endpoints", body)
	if e := wantError(t, status, data, http.StatusUnprocessableEntity, "quota_exceeded"); !strings.Contains(e.Message, "limited to 103 endpoints") {
		t.Errorf("message = %q, want it to name the limit 103", e.Message)
	}
	if got := countEndpoints(t, h, key); got != 103 {
		t.Errorf("tenant has %d endpoints, want 103", got)
	}
}

func TestTenantQuotaOverrides(t *testing.T) {
	h := startService(t)
	status, data := h.admin(http.MethodPost, "/admin/v1/tenants", map[string]any{"id": "big", "name": "Big", "quotas": map[string]int{"endpoints": 5000, "ingest_events_per_second": 50, "ingest_burst": 100}})
	if status != http.StatusCreated || !strings.Contains(string(data), `"quotas":{"endpoints":5000,"ingest_events_per_second":50,"ingest_burst":100}`) {
		t.Fatalf("create tenant with quotas: %d %s", status, data)
	}
	tests := []struct {
		name   string
		body   string
		status int
		want   string // in the body
	}{
		{"zero", `{"quotas":{"endpoints":0}}`, http.StatusUnprocessableEntity, `"field":"quotas.endpoints"`},
		{"negative", `{"quotas":{"ingest_burst":-1}}`, http.StatusUnprocessableEntity, `"field":"quotas.ingest_burst"`},
		{"too large", `{"quotas":{"headers_per_endpoint":1000001}}`, http.StatusUnprocessableEntity, `"field":"quotas.headers_per_endpoint"`},
		{"unknown field", `{"quotas":{"events":1}}`, http.StatusBadRequest, `"unknown_field"`},
		{"no quotas changes nothing", `{}`, http.StatusOK, `"quotas":{"endpoints":5000,"ingest_events_per_second":50,"ingest_burst":100}`},
		{"replace", `{"quotas":{"headers_per_endpoint":64}}`, http.StatusOK, `"quotas":{"headers_per_endpoint":64}`},
		{"clear", `{"quotas":{}}`, http.StatusOK, `"created_at"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, data := h.admin(http.MethodPatch, "/admin/v1/tenants/big", tt.body)
			if status != tt.status || !strings.Contains(string(data), tt.want) {
				t.Fatalf("PATCH %s = %d %s, want %d with %s", tt.body, status, data, tt.status, tt.want)
			}
		})
	}
	if status, data := h.admin(http.MethodGet, "/admin/v1/tenants/big", nil); strings.Contains(string(data), "quotas") {
		t.Errorf("GET after clearing = %d %s, want no quotas", status, data)
	}
	if status, data := h.admin(http.MethodPatch, "/admin/v1/tenants/nobody", `{"quotas":{}}`); status != http.StatusNotFound {
		t.Errorf("PATCH a missing tenant = %d %s, want 404", status, data)
	}
}

func TestHeaderQuota(t *testing.T) {
	h := startService(t, func(c *Config) { c.Quotas.HeadersPerEndpoint = 2 })
	_, key := h.newTenant("hdr")
	headers := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("X-H%d", i)] = "v"
		}
		return m
	}
	ep := h.newEndpoint(key, map[string]any{"url": "http://127.0.0.1:9/hook", "headers": headers(2)})

	status, data := h.api(key, http.MethodPost, "/v1/endpoints", map[string]any{"url": "http://127.0.0.1:9/hook", "headers": headers(3)})
	if e := wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed"); e.Field != "headers" || !strings.Contains(e.Message, "limited to 2 headers per endpoint") {
		t.Errorf("create with 3 headers: %+v, want field headers naming the limit 2", e)
	}
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"headers": headers(3)})
	wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed")
	status, data = h.api(key, http.MethodGet, "/v1/endpoints/"+ep.ID, nil)
	if got := decode[endpointView](t, data).Headers; status != http.StatusOK || len(got) != 2 {
		t.Fatalf("after a refused patch: %d, headers %v, want the 2 unchanged", status, got)
	}

	if status, data := h.admin(http.MethodPatch, "/admin/v1/tenants/hdr", map[string]any{"quotas": map[string]int{"headers_per_endpoint": 40}}); status != http.StatusOK {
		t.Fatalf("raise header quota: %d %s", status, data)
	}
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"headers": headers(40)})
	if got := decode[endpointView](t, data).Headers; status != http.StatusOK || len(got) != 40 {
		t.Fatalf("patch to 40 headers under a 40 quota: %d %s", status, data)
	}
	status, data = h.api(key, http.MethodPatch, "/v1/endpoints/"+ep.ID, map[string]any{"headers": headers(41)})
	wantError(t, status, data, http.StatusUnprocessableEntity, "validation_failed")
}

// TestEndpointCounterRecovers covers a crash between reserving a slot and
// creating the endpoint, and endpoints made before the counter existed.
func TestEndpointCounterRecovers(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Quotas.Endpoints = 2 })
	clock := &testClock{now: time.Now()}
	h.clock = clock
	h.start()
	_, key := h.newTenant("crash")
	body := map[string]any{"url": "http://127.0.0.1:9/hook"}
	ctx := context.Background()
	st := h.svc.store

	h.newEndpoint(key, body)
	tenant, err := st.GetTenant(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	// A replica reserved a slot and died before writing the endpoint.
	if _, err := st.reserveEndpoint(ctx, tenant, "ep_01JZZZZZZZZZZZZZZZZZZZZZZZ"); err != nil {
		t.Fatalf("reserve: %v", err)
	}
	status, data := h.api(key, http.MethodPost, "/v1/endpoints", body)
	wantError(t, status, data, http.StatusUnprocessableEntity, "quota_exceeded")
	clock.Advance(pendingStale + time.Second)
	h.newEndpoint(key, body)
	status, data = h.api(key, http.MethodPost, "/v1/endpoints", body)
	wantError(t, status, data, http.StatusUnprocessableEntity, "quota_exceeded")

	// Without a counter (endpoints older than quotas), the first use counts
	// the endpoints in the store.
	if err := st.usage.kv.Purge(ctx, usageKey("crash")); err != nil {
		t.Fatal(err)
	}
	status, data = h.api(key, http.MethodPost, "/v1/endpoints", body)
	wantError(t, status, data, http.StatusUnprocessableEntity, "quota_exceeded")
	status, data = h.api(key, http.MethodGet, "/v1/endpoints?limit=1", nil)
	if status != http.StatusOK {
		t.Fatalf("list: %d %s", status, data)
	}
	victim := decode[listPage[endpointView]](t, data).Data[0].ID
	if status, data := h.api(key, http.MethodDelete, "/v1/endpoints/"+victim, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, data)
	}
	var u endpointUsage
	if _, found, err := getJSON(ctx, st.usage, usageKey("crash"), &u); err != nil || !found || u.Count != 1 || len(u.Pending) != 0 {
		t.Errorf("counter after a recount and a delete = %+v (found %v, err %v), want count 1 and nothing pending", u, found, err)
	}
	h.newEndpoint(key, body)
}

// TestWatchCarriesTenantQuotas: ingest learns a tenant's overrides from
// the Watch stream.
func TestWatchCarriesTenantQuotas(t *testing.T) {
	h := startService(t)
	h.newTenant("acme")
	v := runView(t, dialConfig(t, h.svc.GRPCAddr(), testInternalToken))
	if tn, _ := v.Tenant("acme"); tn.GetQuotas() != nil {
		t.Errorf("tenant without overrides has quotas %v in the view", tn.GetQuotas())
	}
	if status, data := h.admin(http.MethodPatch, "/admin/v1/tenants/acme", map[string]any{"quotas": map[string]int{"ingest_events_per_second": 50, "ingest_burst": 70}}); status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", status, data)
	}
	testenv.WaitFor(t, 5*time.Second, func() error {
		tn, _ := v.Tenant("acme")
		q := tn.GetQuotas()
		if q == nil || q.GetIngestEventsPerSecond() != 50 || q.GetIngestBurst() != 70 || q.Endpoints != nil {
			return fmt.Errorf("view quotas = %v, want 50 events/s, burst 70, nothing else", q)
		}
		return nil
	})
}

func TestQuotasWithDefaults(t *testing.T) {
	tests := []struct {
		in      Quotas
		want    Quotas
		wantErr bool
	}{
		{Quotas{}, Quotas{Endpoints: 100, HeadersPerEndpoint: 32}, false},
		{Quotas{Endpoints: NoQuota, HeadersPerEndpoint: 5}, Quotas{Endpoints: NoQuota, HeadersPerEndpoint: 5}, false},
		{Quotas{Endpoints: -2}, Quotas{}, true},
	}
	for _, tt := range tests {
		got, err := tt.in.withDefaults()
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("%+v.withDefaults() = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestEndpointUsageApply(t *testing.T) {
	at := time.Now()
	tests := []struct {
		name        string
		pending     map[string]pendingWrite
		apply       string
		wantCount   int
		wantPending int
	}{
		{"create", map[string]pendingWrite{"a": {Endpoint: "ep1", At: at}}, "a", 3, 0},
		{"delete", map[string]pendingWrite{"a": {Endpoint: "ep1", Delete: true, At: at}}, "a", 1, 0},
		{"delete drops the other deletes of the endpoint", map[string]pendingWrite{
			"a": {Endpoint: "ep1", Delete: true, At: at},
			"b": {Endpoint: "ep1", Delete: true, At: at},
			"c": {Endpoint: "ep2", Delete: true, At: at},
			"d": {Endpoint: "ep3", At: at},
		}, "a", 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := endpointUsage{Count: 2, Pending: tt.pending}
			p := u.Pending[tt.apply]
			delete(u.Pending, tt.apply)
			u.apply(p)
			if u.Count != tt.wantCount || len(u.Pending) != tt.wantPending {
				t.Errorf("after apply: count %d, %d pending; want %d, %d", u.Count, len(u.Pending), tt.wantCount, tt.wantPending)
			}
		})
	}
}

func TestTenantQuotasProtoRoundTrip(t *testing.T) {
	n := func(v int) *int { return &v }
	tests := []*TenantQuotas{
		nil,
		{},
		{Endpoints: n(5)},
		{Endpoints: n(1), HeadersPerEndpoint: n(2), IngestEventsPerSecond: n(3), IngestBurst: n(4)},
	}
	for _, q := range tests {
		got := tenantQuotasFromProto(q.proto())
		if fmt.Sprint(got.proto()) != fmt.Sprint(q.orNil().proto()) || (q.orNil() == nil) != (got == nil) {
			t.Errorf("round trip of %+v = %+v", q, got)
		}
	}
}
