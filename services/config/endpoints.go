package config

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// BasicAuth is HTTP basic-auth credentials sent to an endpoint.
type BasicAuth struct {
	Username string
	Password string
}

// EndpointInput is a new endpoint. Nil pointers take the defaults: enabled,
// a 15 s timeout, no rate limit; an empty Secret is generated.
type EndpointInput struct {
	// ID is the new endpoint's id when the caller needs it in advance (the
	// relay puts it in the URL); empty makes one.
	ID             string
	URL            string
	Description    string
	EventTypes     []string
	Headers        map[string]HeaderValue
	BasicAuth      *BasicAuth
	Enabled        *bool
	TimeoutSeconds *int
	RateLimit      *int
	Secret         string
}

// CreateEndpoint validates and stores a new endpoint of a tenant and returns
// it with its secrets in clear text. Invalid input is a *ValidationError.
func (s *Store) CreateEndpoint(ctx context.Context, tenantID string, in EndpointInput) (*configv1.Endpoint, error) {
	tenant, err := s.GetTenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	id := in.ID
	if id == "" {
		id = ids.New(ids.Endpoint)
	} else if !ids.Valid(ids.Endpoint, id) {
		return nil, invalid("id", "%q is not an endpoint id", id)
	}
	rec := &endpointRecord{
		ID:        id,
		TenantID:  tenantID,
		Enabled:   true,
		TimeoutMS: defaultTimeoutSecs * 1000,
		CreatedAt: now,
		UpdatedAt: now,
	}
	patch := EndpointPatch{
		URL:            &in.URL,
		Description:    &in.Description,
		EventTypes:     &in.EventTypes,
		Headers:        &in.Headers,
		Enabled:        in.Enabled,
		TimeoutSeconds: in.TimeoutSeconds,
		RateLimit:      in.RateLimit,
	}
	if in.BasicAuth != nil {
		patch.BasicAuth = &BasicAuthPatch{Username: in.BasicAuth.Username, Password: &in.BasicAuth.Password}
	}
	if err := s.applyPatch(ctx, rec, patch); err != nil {
		return nil, err
	}
	if err := s.checkHeaderQuota(tenant, rec.Headers); err != nil {
		return nil, err
	}
	secret := in.Secret
	if secret == "" {
		if secret, err = newSigningSecret(); err != nil {
			return nil, err
		}
	} else if err := checkSigningSecret("secret", secret); err != nil {
		return nil, err
	}
	sealed, err := s.seal(rec.ID, purposeSecret, secret)
	if err != nil {
		return nil, err
	}
	rec.Secrets = []secretRecord{{Sealed: sealed, CreatedAt: now}}
	data, err := marshal("endpoint", rec)
	if err != nil {
		return nil, err
	}
	token, err := s.reserveEndpoint(ctx, tenant, rec.ID)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, pendingDeadline)
	rev, err := s.endpoints.kv.Create(wctx, endpointKey(tenantID, rec.ID), data)
	cancel()
	if err == nil {
		s.settleEndpoint(ctx, tenantID, token, true)
	}
	if err != nil {
		return nil, fmt.Errorf("store endpoint %s: %w", rec.ID, err)
	}
	s.awaitApplied(ctx, s.endpoints, rev)
	s.log.InfoContext(ctx, "endpoint created", "tenant_id", tenantID, "endpoint_id", rec.ID)
	return s.endpointProto(rec, rev)
}

// GetEndpoint returns a tenant's endpoint, with secrets in clear text. An
// endpoint of another tenant is an error wrapping ErrNotFound. It waits until
// Run has loaded the state.
func (s *Store) GetEndpoint(ctx context.Context, tenantID, id string) (*configv1.Endpoint, error) {
	if err := s.state.waitLoaded(ctx); err != nil {
		return nil, err
	}
	ep, ok := s.state.endpoint(tenantID, id)
	if !ok {
		return nil, notFound("endpoint", id)
	}
	return ep, nil
}

// ListEndpoints returns up to limit endpoints of a tenant with ids after
// `after`, by id, and whether more follow. It waits until Run has loaded the
// state.
func (s *Store) ListEndpoints(ctx context.Context, tenantID, after string, limit int) ([]*configv1.Endpoint, bool, error) {
	if err := s.state.waitLoaded(ctx); err != nil {
		return nil, false, err
	}
	eps, more := s.state.endpointsPage(tenantID, after, limit)
	return eps, more, nil
}

// UpdateEndpoint applies a patch to a tenant's endpoint. Invalid input is a
// *ValidationError and changes nothing.
func (s *Store) UpdateEndpoint(ctx context.Context, tenantID, id string, patch EndpointPatch) (*configv1.Endpoint, error) {
	tenant, err := s.GetTenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return s.modifyEndpoint(ctx, tenantID, id, func(rec *endpointRecord) error {
		if err := s.applyPatch(ctx, rec, patch); err != nil {
			return err
		}
		return s.checkHeaderQuota(tenant, rec.Headers)
	})
}

// DeleteEndpoint deletes a tenant's endpoint.
func (s *Store) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	if !ids.Valid(ids.Endpoint, id) {
		return notFound("endpoint", id)
	}
	key := endpointKey(tenantID, id)
	token, err := s.beginEndpointDelete(ctx, tenantID, id)
	if err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	err = retryOnConflict(ctx, "delete endpoint "+id, func() error {
		var rec endpointRecord
		rev, found, err := getJSON(ctx, s.endpoints, key, &rec)
		if err != nil {
			return err
		}
		if !found {
			return notFound("endpoint", id)
		}
		return s.endpoints.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	})
	s.endEndpointDelete(ctx, tenantID, token, err)
	if err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	s.awaitDeleted(ctx, s.endpoints)
	s.log.InfoContext(ctx, "endpoint deleted", "tenant_id", tenantID, "endpoint_id", id)
	return nil
}

// modifyEndpoint reads an endpoint from the store, changes it with f, prunes
// expired secrets and writes it back if nobody changed it in between
// (retrying otherwise).
func (s *Store) modifyEndpoint(ctx context.Context, tenantID, id string, f func(rec *endpointRecord) error) (*configv1.Endpoint, error) {
	if !ids.Valid(ids.Endpoint, id) {
		return nil, notFound("endpoint", id)
	}
	key := endpointKey(tenantID, id)
	var (
		rec endpointRecord
		rev uint64
	)
	err := retryOnConflict(ctx, "update endpoint "+id, func() error {
		rec = endpointRecord{}
		cur, found, err := getJSON(ctx, s.endpoints, key, &rec)
		if err != nil {
			return err
		}
		if !found {
			return notFound("endpoint", id)
		}
		if err := s.sealCredentialHeaders(&rec); err != nil {
			return err
		}
		if err := f(&rec); err != nil {
			return err
		}
		now := s.now().UTC()
		rec.Secrets = pruneSecrets(rec.Secrets, now)
		rec.UpdatedAt = now
		data, err := marshal("endpoint", rec)
		if err != nil {
			return err
		}
		rev, err = s.endpoints.kv.Update(ctx, key, data, cur)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.awaitApplied(ctx, s.endpoints, rev)
	s.log.InfoContext(ctx, "endpoint updated", "tenant_id", tenantID, "endpoint_id", id, "secrets", len(rec.Secrets))
	return s.endpointProto(&rec, rev)
}
