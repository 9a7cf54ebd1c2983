package configwatch

import (
	"testing"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

func upsertEndpoint(ep *configv1.Endpoint) *configv1.Change {
	return &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_Endpoint{Endpoint: ep}}
}

// applyNow applies one change and rebuilds the indexes it touched, as a live
// batch of one change would.
func applyNow(s *state, c *configv1.Change) {
	dirty := map[string]struct{}{}
	s.apply(c, dirty)
	for tenant := range dirty {
		s.reindex(tenant)
	}
}

func ids(eps []*configv1.Endpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = ep.GetId()
	}
	return out
}

func TestMatchIndex(t *testing.T) {
	v := New(nil, nil)
	s := v.state
	for _, ep := range []*configv1.Endpoint{
		{Id: "ep_b", TenantId: "a", Enabled: true, EventTypes: []string{"job.completed"}},
		{Id: "ep_a", TenantId: "a", Enabled: true},
		{Id: "ep_c", TenantId: "a", Enabled: true, EventTypes: []string{"job.failed"}},
		{Id: "ep_d", TenantId: "a", Enabled: false},
		{Id: "ep_e", TenantId: "b", Enabled: true},
	} {
		applyNow(s, upsertEndpoint(ep))
	}
	for _, tc := range []struct {
		tenant, typ   string
		filtered, all []string
	}{
		{"a", "job.completed", []string{"ep_b"}, []string{"ep_a"}},
		{"a", "job.failed", []string{"ep_c"}, []string{"ep_a"}},
		{"a", "job.created", nil, []string{"ep_a"}},
		{"b", "job.completed", nil, []string{"ep_e"}},
		{"nobody", "job.completed", nil, nil},
	} {
		filtered, all := v.Match(tc.tenant, tc.typ)
		if got := ids(filtered); len(got) != len(tc.filtered) || (len(got) > 0 && got[0] != tc.filtered[0]) {
			t.Errorf("Match(%s, %s) filtered = %v, want %v", tc.tenant, tc.typ, got, tc.filtered)
		}
		if got := ids(all); len(got) != len(tc.all) || (len(got) > 0 && got[0] != tc.all[0]) {
			t.Errorf("Match(%s, %s) all = %v, want %v", tc.tenant, tc.typ, got, tc.all)
		}
	}
	if got := ids(v.Endpoints("a")); len(got) != 4 || got[0] != "ep_a" || got[3] != "ep_d" {
		t.Errorf("Endpoints(a) = %v, want the four endpoints sorted by id", got)
	}

	// Disabling, moving and deleting take effect on the index.
	applyNow(s, upsertEndpoint(&configv1.Endpoint{Id: "ep_a", TenantId: "a", Enabled: false}))
	if _, all := v.Match("a", "job.created"); len(all) != 0 {
		t.Errorf("disabled endpoint still matched: %v", ids(all))
	}
	applyNow(s, upsertEndpoint(&configv1.Endpoint{Id: "ep_b", TenantId: "b", Enabled: true, EventTypes: []string{"job.completed"}}))
	if f, _ := v.Match("a", "job.completed"); len(f) != 0 {
		t.Errorf("endpoint moved to tenant b still matched for a: %v", ids(f))
	}
	if f, _ := v.Match("b", "job.completed"); len(f) != 1 {
		t.Errorf("endpoint moved to tenant b not matched for b: %v", ids(f))
	}
	applyNow(s, &configv1.Change{Op: configv1.Op_OP_DELETE, Object: &configv1.Change_Endpoint{Endpoint: &configv1.Endpoint{Id: "ep_e", TenantId: "b"}}})
	if _, ok := v.Endpoint("ep_e"); ok {
		t.Errorf("deleted endpoint still found")
	}
	if _, all := v.Match("b", "job.completed"); len(all) != 0 {
		t.Errorf("deleted endpoint still matched: %v", ids(all))
	}
}

func TestTenantsAndEventTypes(t *testing.T) {
	v := New(nil, nil)
	applyNow(v.state, &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_Tenant{Tenant: &configv1.Tenant{Id: "a"}}})
	applyNow(v.state, &configv1.Change{Op: configv1.Op_OP_UPSERT, Object: &configv1.Change_EventType{EventType: &configv1.EventType{Name: "job.completed"}}})
	if _, ok := v.Tenant("a"); !ok {
		t.Error("Tenant(a) not found after upsert")
	}
	if _, ok := v.EventType("job.completed"); !ok {
		t.Error("EventType(job.completed) not found after upsert")
	}
	applyNow(v.state, &configv1.Change{Op: configv1.Op_OP_DELETE, Object: &configv1.Change_Tenant{Tenant: &configv1.Tenant{Id: "a"}}})
	if _, ok := v.Tenant("a"); ok {
		t.Error("Tenant(a) found after delete")
	}
	if tn, et, ep := v.Counts(); tn != 0 || et != 1 || ep != 0 {
		t.Errorf("Counts() = %d, %d, %d, want 0, 1, 0", tn, et, ep)
	}
}
