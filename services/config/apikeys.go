package config

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
)

// API keys are "phk_" and base64url of 32 random bytes. They are stored only
// as their SHA-256: with 256 random bits a fast hash cannot be brute-forced,
// and it lets a request find its key with one lookup.
const (
	apiKeyPrefix    = "phk_"
	apiKeyBytes     = 32
	apiKeyLen       = len(apiKeyPrefix) + 43 // base64url without padding of 32 bytes
	apiKeyShownPart = 12                     // characters kept as the display prefix
)

// APIKey describes a tenant's API key; the key itself is never stored.
type APIKey struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	CreatedAt time.Time `json:"created_at"`
}

// CreatedAPIKey is a new API key with its plaintext Key, which is shown once
// and cannot be read again.
type CreatedAPIKey struct {
	APIKey
	Key string `json:"key"`
}

func apiKeyFromRecord(r *apiKeyRecord) APIKey {
	return APIKey{ID: r.ID, TenantID: r.TenantID, Name: r.Name, Prefix: r.Prefix, CreatedAt: r.CreatedAt}
}

// hashSecret returns the hex SHA-256 of a random credential (API key, portal
// token, session id), used as its storage key.
func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// randomToken returns prefix + base64url (no padding) of n random bytes.
func randomToken(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// CreateAPIKey makes a new API key for a tenant and returns it with its
// plaintext key. A missing tenant is an error wrapping ErrNotFound. It does
// not need Run.
func (s *Store) CreateAPIKey(ctx context.Context, tenantID, name string) (CreatedAPIKey, error) {
	name, err := checkName("name", name, false)
	if err != nil {
		return CreatedAPIKey{}, err
	}
	if _, err := s.GetTenant(ctx, tenantID); err != nil {
		return CreatedAPIKey{}, err
	}
	key, err := randomToken(apiKeyPrefix, apiKeyBytes)
	if err != nil {
		return CreatedAPIKey{}, fmt.Errorf("make API key: %w", err)
	}
	rec := apiKeyRecord{
		ID:        ids.New(ids.APIKey),
		TenantID:  tenantID,
		Name:      name,
		Prefix:    key[:apiKeyShownPart],
		CreatedAt: s.now().UTC(),
	}
	data, err := marshal("API key", rec)
	if err != nil {
		return CreatedAPIKey{}, err
	}
	rev, err := s.apiKeys.kv.Create(ctx, hashSecret(key), data)
	if err != nil {
		return CreatedAPIKey{}, fmt.Errorf("store API key of tenant %s: %w", tenantID, err)
	}
	s.awaitApplied(ctx, s.apiKeys, rev)
	s.log.InfoContext(ctx, "API key created", "tenant_id", tenantID, "key_id", rec.ID, "prefix", rec.Prefix)
	return CreatedAPIKey{APIKey: apiKeyFromRecord(&rec), Key: key}, nil
}

// ListAPIKeys returns a tenant's API keys, without secrets, by id. It waits
// until Run has loaded the state.
func (s *Store) ListAPIKeys(ctx context.Context, tenantID string) ([]APIKey, error) {
	if err := s.state.waitLoaded(ctx); err != nil {
		return nil, err
	}
	if _, ok := s.state.tenant(tenantID); !ok {
		return nil, notFound("tenant", tenantID)
	}
	recs := s.state.apiKeysOf(tenantID)
	out := make([]APIKey, len(recs))
	for i, r := range recs {
		out[i] = apiKeyFromRecord(r)
	}
	return out, nil
}

// RevokeAPIKey deletes a tenant's API key; requests with it fail from then
// on. A key that does not exist or belongs to another tenant is an error
// wrapping ErrNotFound. It waits until Run has loaded the state.
func (s *Store) RevokeAPIKey(ctx context.Context, tenantID, keyID string) error {
	if err := s.state.waitLoaded(ctx); err != nil {
		return err
	}
	hash, ok := s.state.apiKeyHash(tenantID, keyID)
	if !ok {
		return notFound("API key", keyID)
	}
	if err := s.apiKeys.kv.Delete(ctx, hash); err != nil {
		return fmt.Errorf("delete API key %s: %w", keyID, err)
	}
	s.awaitDeleted(ctx, s.apiKeys)
	s.log.InfoContext(ctx, "API key revoked", "tenant_id", tenantID, "key_id", keyID)
	return nil
}

// Authenticate returns the tenant an API key belongs to. A malformed, unknown
// or revoked key is an error wrapping ErrUnauthorized. It reads the store,
// so a revoked key stops working on every replica at once.
func (s *Store) Authenticate(ctx context.Context, key string) (tenantID string, err error) {
	if len(key) != apiKeyLen || !strings.HasPrefix(key, apiKeyPrefix) {
		return "", fmt.Errorf("API key is malformed: %w", ErrUnauthorized)
	}
	var rec apiKeyRecord
	_, found, err := getJSON(ctx, s.apiKeys, hashSecret(key), &rec)
	// On a replicated bucket a get can be answered by a follower that has
	// not applied a key created a moment ago (seen as a 401 on the first
	// call after POST .../api-keys in a 3-node cluster), so a miss is read
	// again, a few times, before the key is refused.
	for retry := 0; err == nil && !found && retry < 3; retry++ {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("look up API key: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		_, found, err = getJSON(ctx, s.apiKeys, hashSecret(key), &rec)
	}
	if err != nil {
		return "", fmt.Errorf("look up API key: %w", err)
	}
	if !found {
		return "", fmt.Errorf("API key is unknown or revoked: %w", ErrUnauthorized)
	}
	return rec.TenantID, nil
}
