package config

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/streams"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

// pathParams matches the {name} wildcards of a ServeMux pattern.
var pathParams = regexp.MustCompile(`\{([a-z_]+)(\.\.\.)?\}`)

// notTenantData are routes with a path parameter that names no tenant
// object, and why.
var notTenantData = map[string]string{
	"GET /portal/static/{name}": "an embedded asset of the portal app, the same for everyone",
}

// TestTenantIsolationOfEveryRouteWithAnID walks the routes as the service
// registers them (apiRoutes, mirrored under /portal/api/, portalRoutes and
// relayRoutes).
// For every route that takes an id, tenant A's API key or portal session
// with another tenant's ids, alone or mixed with A's own, is 404 and
// changes nothing. A route with a path parameter this test does not know
// fails it, so a new route cannot skip the check.
func TestTenantIsolationOfEveryRouteWithAnID(t *testing.T) {
	e := newLogEnv(t)
	answerRetryNow(t, e.nats.Conn(t), 0) // retry-now needs a delivery worker to answer
	_, keyA := e.newTenant("tenant-a")
	_, keyB := e.newTenant("tenant-b")
	epA := e.newEndpoint(keyA, map[string]any{"url": "https://example.com/a"})
	epB := e.newEndpoint(keyB, map[string]any{"url": "https://example.com/b"})
	started := time.Now().UTC().Add(-time.Minute)
	msgA := e.publishEvent("tenant-a", "job.completed", started)
	msgB := e.publishEvent("tenant-b", "job.completed", started)
	atA := e.publishAttempt("tenant-a", epA.ID, msgA, 1, started, eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED)
	atB := e.publishAttempt("tenant-b", epB.ID, msgB, 1, started, eventv1.Outcome_OUTCOME_HTTP_STATUS, eventv1.DeliveryState_DELIVERY_STATE_EXHAUSTED)
	e.indexed()

	// The ids of each tenant's objects, by path parameter name.
	own := map[string]string{"id": epA.ID, "msg_id": msgA, "attempt_id": atA.GetId()}
	foreign := map[string]string{"id": epB.ID, "msg_id": msgB, "attempt_id": atB.GetId()}
	// Bodies that would succeed on tenant A's own objects, so a 404 is the
	// ownership check and not validation.
	bodies := map[string]any{
		"PATCH /v1/endpoints/{id}":              map[string]any{"description": "changed by another tenant"},
		"POST /v1/endpoints/{id}/secret/rotate": map[string]any{"expire_previous": "now"},
		"POST /v1/endpoints/{id}/test":          map[string]any{},
		"POST /v1/endpoints/{id}/recover":       map[string]any{"since": started.Add(-time.Hour).Format(time.RFC3339)},
	}
	cookie, csrf := e.portalSession(keyA)
	portal := with(cookie, portal.CSRFHeader, csrf)

	type call struct{ method, pattern, path string }
	var calls []call
	covered := 0
	expand := func(method, pattern, prefix string) {
		names := pathParams.FindAllStringSubmatch(pattern, -1)
		if len(names) == 0 {
			return
		}
		for _, n := range names {
			if _, ok := foreign[n[1]]; !ok {
				t.Errorf("route %s %s has path parameter {%s}, which the tenant isolation test does not know: add another tenant's object for it", method, pattern, n[1])
				return
			}
		}
		covered++
		// Every mix of A's and B's ids with at least one of B's.
		for mask := 1; mask < 1<<len(names); mask++ {
			path, i := pattern, 0
			path = pathParams.ReplaceAllStringFunc(path, func(m string) string {
				name := pathParams.FindStringSubmatch(m)[1]
				id := own[name]
				if mask&(1<<i) != 0 {
					id = foreign[name]
				}
				i++
				return id
			})
			calls = append(calls, call{method, pattern, prefix + path})
		}
	}
	for _, rt := range e.svc.apiRoutes() {
		expand(rt.method, rt.pattern, "")
		if rest, ok := strings.CutPrefix(rt.pattern, "/v1/"); ok {
			expand(rt.method, "/portal/api/"+rest, "") // the portal API mirror
		}
	}
	for _, rt := range append(e.svc.portalRoutes(), e.svc.relayRoutes()...) {
		if _, ok := notTenantData[rt.method+" "+rt.pattern]; ok {
			continue
		}
		expand(rt.method, rt.pattern, "")
	}
	if covered < 10 {
		t.Fatalf("only %d routes with ids found; the route walk is broken", covered)
	}

	before := e.isolationSnapshot(keyB, epB.ID)
	for _, c := range calls {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			v1 := c.pattern
			if rest, ok := strings.CutPrefix(c.pattern, "/portal/api/"); ok {
				v1 = "/v1/" + rest
			}
			body := bodies[c.method+" "+v1]
			var status int
			var data []byte
			if strings.HasPrefix(c.path, "/portal/") {
				status, data, _ = e.request(c.method, c.path, body, portal)
			} else {
				status, data = e.api(keyA, c.method, c.path, body)
			}
			wantError(t, status, data, http.StatusNotFound, "not_found")
		})
	}
	if after := e.isolationSnapshot(keyB, epB.ID); after != before {
		t.Errorf("tenant B's state changed under tenant A's requests:\n before %s\n after  %s", before, after)
	}

	// The same requests with A's own ids succeed, so the 404s above are the
	// ownership check (and the bodies are right).
	for _, rt := range e.svc.apiRoutes() {
		if !pathParams.MatchString(rt.pattern) || rt.method == http.MethodDelete {
			continue
		}
		path := pathParams.ReplaceAllStringFunc(rt.pattern, func(m string) string { return own[pathParams.FindStringSubmatch(m)[1]] })
		if status, data := e.api(keyA, rt.method, path, bodies[rt.method+" "+rt.pattern]); status >= 300 {
			t.Errorf("%s %s with tenant A's own ids = %d %s, want success", rt.method, path, status, data)
		}
	}
}

// isolationSnapshot describes what another tenant's requests must not
// change: B's endpoint record and secret, and the number of events and
// deliveries published.
func (e *logEnv) isolationSnapshot(keyB, epB string) string {
	e.t.Helper()
	_, ep := e.api(keyB, http.MethodGet, "/v1/endpoints/"+epB, nil)
	_, sec := e.api(keyB, http.MethodGet, "/v1/endpoints/"+epB+"/secret", nil)
	rec, err := e.svc.store.GetEndpoint(context.Background(), "tenant-b", epB)
	if err != nil {
		e.t.Fatal(err)
	}
	counts := ""
	for _, name := range []string{streams.Events, streams.Deliveries} {
		st, err := e.js.Stream(context.Background(), name)
		if err != nil {
			e.t.Fatal(err)
		}
		info, err := st.Info(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		counts += fmt.Sprintf(" %s=%d", name, info.State.Msgs)
	}
	return fmt.Sprintf("revision=%d%s endpoint=%s secret=%s", rec.GetRevision(), counts, ep, sec)
}
