package config

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

// Signing secrets are "whsec_" and standard base64 of 24 to 64 bytes
// (Standard Webhooks); generated ones have 32 random bytes.
const (
	secretPrefix       = "whsec_"
	secretMinBytes     = 24
	secretMaxBytes     = 64
	secretDefaultBytes = 32
	// maxSecrets bounds the current secret plus those still in their grace
	// period after rotation, so signatures stay few.
	maxSecrets = 5
)

// newSigningSecret returns a fresh "whsec_" secret of 32 random bytes.
func newSigningSecret() (string, error) {
	b := make([]byte, secretDefaultBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make signing secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// checkSigningSecret checks a secret given by a tenant.
func checkSigningSecret(field, s string) error {
	rest, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return invalid(field, "must start with %q followed by standard base64 of %d to %d random bytes", secretPrefix, secretMinBytes, secretMaxBytes)
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return invalid(field, "the part after %q is not standard base64 (with padding)", secretPrefix)
	}
	if len(b) < secretMinBytes || len(b) > secretMaxBytes {
		return invalid(field, "decodes to %d bytes; it must be %d to %d bytes", len(b), secretMinBytes, secretMaxBytes)
	}
	return nil
}

// RotateSecret makes key (generated when empty) the endpoint's current
// signing secret. The previous current secret keeps signing until now+grace
// (0 drops it at once) and earlier retired ones keep their expiry, unless
// expirePrevious, which drops every earlier secret at once (to revoke a
// leaked one). At most five secrets are kept, dropping those that expire
// soonest, and expired ones are pruned.
func (s *Store) RotateSecret(ctx context.Context, tenantID, id, key string, grace time.Duration, expirePrevious bool) (*configv1.Endpoint, error) {
	if grace < 0 || grace > maxGracePeriodHours*time.Hour {
		return nil, invalid("grace_period_seconds", "must be between 0 and %d (7 days)", int((maxGracePeriodHours * time.Hour).Seconds()))
	}
	if key == "" {
		var err error
		if key, err = newSigningSecret(); err != nil {
			return nil, err
		}
	} else if err := checkSigningSecret("key", key); err != nil {
		return nil, err
	}
	return s.modifyEndpoint(ctx, tenantID, id, func(rec *endpointRecord) error {
		now := s.now().UTC()
		sealed, err := s.seal(rec.ID, purposeSecret, key)
		if err != nil {
			return err
		}
		next := []secretRecord{{Sealed: sealed, CreatedAt: now}}
		if expirePrevious {
			rec.Secrets = next
			return nil
		}
		expires := now.Add(grace)
		for _, sr := range rec.Secrets {
			if sr.ExpiresAt == nil {
				if grace == 0 {
					continue
				}
				sr.ExpiresAt = &expires
			}
			next = append(next, sr)
		}
		rec.Secrets = next
		return nil
	})
}

// CurrentSecret returns the secret an endpoint signs with now.
func CurrentSecret(ep *configv1.Endpoint) string {
	for _, sec := range ep.GetSecrets() {
		if sec.GetExpiresAt() == nil {
			return sec.GetKey()
		}
	}
	return ""
}

// secretFingerprint identifies a secret without revealing it: "sha256:" and
// the first 16 hex digits of the SHA-256 of the whole "whsec_…" string.
func secretFingerprint(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// pruneSecrets drops expired secrets and keeps at most maxSecrets: the
// current one first, then those expiring last.
func pruneSecrets(secrets []secretRecord, now time.Time) []secretRecord {
	var current, previous []secretRecord
	for _, sr := range secrets {
		switch {
		case sr.ExpiresAt == nil:
			current = append(current, sr)
		case sr.ExpiresAt.After(now):
			previous = append(previous, sr)
		}
	}
	slices.SortStableFunc(previous, func(a, b secretRecord) int { return b.ExpiresAt.Compare(*a.ExpiresAt) })
	out := append(current, previous...)
	if len(out) > maxSecrets {
		out = out[:maxSecrets]
	}
	return out
}
