package config

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pulsehooks/pulsehooks/services/config/portal"
)

// Portal link tokens and session ids are base64url of 32 random bytes; only
// their SHA-256 is stored.
const (
	portalTokenBytes = 32
	portalTokenLen   = 43
)

// Errors of redeeming a portal link, the portal's own.
var (
	// ErrLinkUsed is wrapped when a portal link is unknown: it was already
	// used, or expired and was removed.
	ErrLinkUsed = portal.ErrLinkUsed
	// ErrLinkExpired is wrapped when a portal link is past its expiry.
	ErrLinkExpired = portal.ErrLinkExpired
	// ErrLinkMalformed is wrapped when a portal link's token is not one the
	// service could have made.
	ErrLinkMalformed = portal.ErrLinkMalformed
)

// PortalLink is a single-use link that opens the portal for a tenant.
type PortalLink struct {
	URL       string    `json:"link"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreatePortalLink makes a single-use portal link for a tenant, valid for the
// configured PortalLinkTTL.
func (s *Store) CreatePortalLink(ctx context.Context, tenantID string) (PortalLink, error) {
	if _, err := s.GetTenant(ctx, tenantID); err != nil {
		return PortalLink{}, err
	}
	token, err := randomToken("", portalTokenBytes)
	if err != nil {
		return PortalLink{}, fmt.Errorf("make portal token: %w", err)
	}
	now := s.now().UTC()
	rec := portalTokenRecord{TenantID: tenantID, CreatedAt: now, ExpiresAt: now.Add(s.linkTTL)}
	data, err := marshal("portal token", rec)
	if err != nil {
		return PortalLink{}, err
	}
	if _, err := s.portalTokens.kv.Create(ctx, hashSecret(token), data); err != nil {
		return PortalLink{}, fmt.Errorf("store portal token of tenant %s: %w", tenantID, err)
	}
	u := *s.publicURL
	u.Path += "/portal/login"
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return PortalLink{URL: u.String(), ExpiresAt: rec.ExpiresAt}, nil
}

// redeemPortalToken consumes a portal token and returns its tenant. The
// token is deleted only if it is still at the revision read, so of two
// concurrent redeems exactly one wins.
func (s *Store) redeemPortalToken(ctx context.Context, token string) (string, error) {
	if !wellFormedToken(token) {
		return "", ErrLinkMalformed
	}
	key := hashSecret(token)
	var rec portalTokenRecord
	rev, found, err := getJSON(ctx, s.portalTokens, key, &rec)
	if err != nil {
		return "", fmt.Errorf("read portal token: %w", err)
	}
	if !found {
		return "", ErrLinkUsed
	}
	err = s.portalTokens.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return "", ErrLinkUsed
	}
	if err != nil {
		return "", fmt.Errorf("consume portal token: %w", err)
	}
	if !s.now().Before(rec.ExpiresAt) {
		return "", ErrLinkExpired
	}
	return rec.TenantID, nil
}

// createSession starts a portal session for a tenant and returns its id.
func (s *Store) createSession(ctx context.Context, tenantID string) (string, time.Time, error) {
	id, err := randomToken("", portalTokenBytes)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("make session id: %w", err)
	}
	now := s.now().UTC()
	rec := sessionRecord{TenantID: tenantID, CreatedAt: now, ExpiresAt: now.Add(s.sessionTTL)}
	data, err := marshal("session", rec)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.sessions.kv.Create(ctx, hashSecret(id), data); err != nil {
		return "", time.Time{}, fmt.Errorf("store session of tenant %s: %w", tenantID, err)
	}
	return id, rec.ExpiresAt, nil
}

// session returns the tenant and expiry of a live session; an unknown,
// malformed or expired one is an error wrapping ErrUnauthorized.
func (s *Store) session(ctx context.Context, id string) (sessionRecord, error) {
	if !wellFormedToken(id) {
		return sessionRecord{}, fmt.Errorf("session id is malformed: %w", ErrUnauthorized)
	}
	var rec sessionRecord
	_, found, err := getJSON(ctx, s.sessions, hashSecret(id), &rec)
	if err != nil {
		return sessionRecord{}, fmt.Errorf("read session: %w", err)
	}
	if !found || !s.now().Before(rec.ExpiresAt) {
		return sessionRecord{}, fmt.Errorf("session is unknown or expired: %w", ErrUnauthorized)
	}
	return rec, nil
}

// endSession deletes a session, so its id is no longer accepted.
func (s *Store) endSession(ctx context.Context, id string) error {
	if err := s.sessions.kv.Delete(ctx, hashSecret(id)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// wellFormedToken reports whether s is base64url of 32 bytes, as tokens and
// session ids are.
func wellFormedToken(s string) bool {
	if len(s) != portalTokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}
