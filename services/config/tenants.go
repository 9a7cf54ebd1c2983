package config

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// tenantIDPattern is what a chosen tenant id must match: it becomes a NATS
// subject token and a KV key part.
var tenantIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// maxNameLen limits names of tenants and API keys, in characters.
const maxNameLen = 200

// Tenant is a Pulse customer organisation.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Quotas are the operator's overrides of the deployment's quotas; nil
	// when every quota is the deployment default.
	Quotas *TenantQuotas `json:"quotas,omitempty"`
	// Portal is the operator's portal branding and embedding for the
	// tenant; nil when the deployment's apply.
	Portal *PortalSettings `json:"portal,omitempty"`
}

func tenantFromProto(t *configv1.Tenant) Tenant {
	return Tenant{ID: t.GetId(), Name: t.GetName(), CreatedAt: t.GetCreatedAt().AsTime(), Quotas: tenantQuotasFromProto(t.GetQuotas())}
}

// CreateTenant creates a tenant. An empty id gets a generated "ten_…" id; a
// given one must match ^[a-zA-Z0-9_-]{1,64}$. An existing id is an error
// wrapping ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, id, name string) (Tenant, error) {
	return s.CreateTenantWithQuotas(ctx, id, name, nil)
}

// CreateTenantWithQuotas is CreateTenant with quota overrides (nil for
// none).
func (s *Store) CreateTenantWithQuotas(ctx context.Context, id, name string, quotas *TenantQuotas) (Tenant, error) {
	name, err := checkName("name", name, true)
	if err != nil {
		return Tenant{}, err
	}
	if err := quotas.check(); err != nil {
		return Tenant{}, err
	}
	if id == "" {
		id = ids.New(ids.Tenant)
	} else if !tenantIDPattern.MatchString(id) {
		return Tenant{}, invalid("id", "must be 1 to 64 letters, digits, '_' or '-' (it is used in NATS subjects)")
	}
	rec := tenantRecord{ID: id, Name: name, CreatedAt: s.now().UTC(), Quotas: quotas.orNil()}
	data, err := marshal("tenant", rec)
	if err != nil {
		return Tenant{}, err
	}
	rev, err := s.tenants.kv.Create(ctx, id, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return Tenant{}, fmt.Errorf("tenant %q already exists: %w", id, ErrConflict)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("store tenant %s: %w", id, err)
	}
	s.awaitApplied(ctx, s.tenants, rev)
	s.log.InfoContext(ctx, "tenant created", "tenant_id", id)
	return Tenant(rec), nil
}

// GetTenant reads a tenant from the store; a missing one is an error wrapping
// ErrNotFound. It does not need Run.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	if !tenantIDPattern.MatchString(id) {
		return Tenant{}, notFound("tenant", id)
	}
	var rec tenantRecord
	_, found, err := getJSON(ctx, s.tenants, id, &rec)
	if err != nil {
		return Tenant{}, err
	}
	if !found {
		return Tenant{}, notFound("tenant", id)
	}
	return Tenant(rec), nil
}

// ListTenants returns up to limit tenants with ids after `after`, by id, and
// whether more follow. It waits until Run has loaded the state.
func (s *Store) ListTenants(ctx context.Context, after string, limit int) ([]Tenant, bool, error) {
	if err := s.state.waitLoaded(ctx); err != nil {
		return nil, false, err
	}
	ts, more := s.state.tenantsPage(after, limit)
	out := make([]Tenant, len(ts))
	for i, t := range ts {
		out[i] = tenantFromProto(t)
	}
	return out, more, nil
}

// checkName trims a display name and checks it: printable, at most
// maxNameLen characters, and present when required.
func checkName(field, name string, required bool) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "" && required:
		return "", invalid(field, "is required")
	case !utf8.ValidString(name):
		return "", invalid(field, "must be valid UTF-8")
	case utf8.RuneCountInString(name) > maxNameLen:
		return "", invalid(field, "must be at most %d characters", maxNameLen)
	case strings.ContainsFunc(name, unicode.IsControl):
		return "", invalid(field, "must not contain control characters")
	}
	return name, nil
}
