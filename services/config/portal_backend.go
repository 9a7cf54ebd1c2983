package config

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

// The portal (package portal) is wired to the store here: its Backend, and
// its routes as the tenant isolation test walks them.

// portalBackend is the store as the portal sees it.
type portalBackend struct{ s *Service }

// RedeemLink consumes a portal link token.
func (b portalBackend) RedeemLink(ctx context.Context, token string) (string, error) {
	return b.s.store.redeemPortalToken(ctx, token)
}

// CreateSession starts a portal session.
func (b portalBackend) CreateSession(ctx context.Context, tenantID string) (string, time.Time, error) {
	return b.s.store.createSession(ctx, tenantID)
}

// Session returns a live session; an unknown or expired one wraps
// portal.ErrNoSession.
func (b portalBackend) Session(ctx context.Context, id string) (portal.Session, error) {
	rec, err := b.s.store.session(ctx, id)
	if errors.Is(err, ErrUnauthorized) {
		return portal.Session{}, fmt.Errorf("%w: %w", portal.ErrNoSession, err)
	}
	if err != nil {
		return portal.Session{}, err
	}
	return portal.Session{TenantID: rec.TenantID, ExpiresAt: rec.ExpiresAt}, nil
}

// EndSession deletes a session.
func (b portalBackend) EndSession(ctx context.Context, id string) error {
	return b.s.store.endSession(ctx, id)
}

// Tenant returns a tenant's id and name.
func (b portalBackend) Tenant(ctx context.Context, id string) (portal.Tenant, error) {
	t, err := b.s.store.GetTenant(ctx, id)
	if err != nil {
		return portal.Tenant{}, err
	}
	return portal.Tenant{ID: t.ID, Name: t.Name}, nil
}

// Endpoints lists a tenant's endpoints from this replica's copy.
func (b portalBackend) Endpoints(tenantID string) []portal.Endpoint {
	var out []portal.Endpoint
	for _, ep := range b.s.state.allEndpoints(tenantID) {
		out = append(out, portal.Endpoint{
			ID:             ep.GetId(),
			URL:            ep.GetUrl(),
			Description:    ep.GetDescription(),
			Enabled:        ep.GetEnabled(),
			DisabledReason: ep.GetDisabledReason(),
			EventTypes:     ep.GetEventTypes(),
		})
	}
	return out
}

// newPortal builds the portal over the service's store; the public URL
// must be set.
func (s *Service) newPortal() (*portal.Portal, error) {
	return portal.New(portal.Config{
		PublicURL:  s.store.publicURL,
		MasterKey:  s.cfg.MasterKey,
		LinkTTL:    s.cfg.PortalLinkTTL,
		SessionTTL: s.cfg.SessionTTL,
		Logger:     s.log,
		APIError:   func(w http.ResponseWriter, r *http.Request, err error) { writeErr(w, r, s.log, err) },
	}, portalBackend{s})
}

// portalRoutes are the portal's routes with path parameters besides its
// mirror of the tenant API, for the tenant isolation test.
func (s *Service) portalRoutes() []apiRoute {
	var out []apiRoute
	for _, rt := range s.portal.Routes() {
		out = append(out, apiRoute{rt.Method, rt.Pattern, rt.Handler})
	}
	return out
}
