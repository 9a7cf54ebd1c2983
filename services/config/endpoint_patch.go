package config

import (
	"context"
	"errors"
	"maps"
	"strings"

	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
	"github.com/pulsehooks/pulsehooks/pkg/webhookheaders"
)

// BasicAuthPatch sets basic-auth credentials; a nil Password keeps the
// current password.
type BasicAuthPatch struct {
	Username string
	Password *string
}

// HeaderValue is a custom header of an endpoint as a tenant sets it.
type HeaderValue struct {
	// Value is the header's value; ignored with Keep.
	Value string
	// Secret seals the value at rest and never shows it back. Names that
	// carry credentials (webhookheaders.Credential) are always secret.
	Secret bool
	// Keep keeps the stored value of an existing secret header.
	Keep bool
}

// EndpointPatch changes the fields that are not nil. EventTypes and Headers
// replace the whole list or map.
type EndpointPatch struct {
	URL             *string
	Description     *string
	EventTypes      *[]string
	Headers         *map[string]HeaderValue
	BasicAuth       *BasicAuthPatch
	RemoveBasicAuth bool
	Enabled         *bool
	TimeoutSeconds  *int
	RateLimit       *int
}

// applyPatch validates a patch against the record and applies it; on error
// the record may be partly changed and must be discarded.
func (s *Store) applyPatch(ctx context.Context, rec *endpointRecord, p EndpointPatch) error {
	if p.URL != nil {
		u := strings.TrimSpace(*p.URL)
		if u == "" {
			return invalid("url", "is required")
		}
		// An endpoint's own relay URL skips the SSRF check (relay_routes.go).
		isRelay, err := s.checkRelayURL(rec.ID, u)
		if err != nil {
			return err
		}
		if !isRelay {
			if err := s.policy.CheckURL(ctx, u, false); err != nil {
				if errors.Is(err, ssrf.ErrBlocked) {
					return invalid("url", "%v; webhooks cannot be sent to private, loopback, link-local or metadata addresses", err)
				}
				return invalid("url", "%v", err)
			}
		}
		rec.URL = u
	}
	if p.Description != nil {
		d, err := checkDescription("description", *p.Description)
		if err != nil {
			return err
		}
		rec.Description = d
	}
	if p.EventTypes != nil {
		list, err := s.checkEventTypes(ctx, *p.EventTypes)
		if err != nil {
			return err
		}
		rec.EventTypes = list
	}
	if p.TimeoutSeconds != nil {
		ms, err := checkTimeout(*p.TimeoutSeconds)
		if err != nil {
			return err
		}
		rec.TimeoutMS = ms
	}
	if p.RateLimit != nil {
		rps, err := checkRateLimit(*p.RateLimit)
		if err != nil {
			return err
		}
		rec.RateLimit = rps
	}
	if p.Enabled != nil {
		rec.Enabled = *p.Enabled
		if rec.Enabled {
			rec.DisabledReason = ""
		}
	}
	authChanged, err := s.applyBasicAuth(rec, p)
	if err != nil {
		return err
	}
	if p.Headers != nil {
		return s.applyHeaders(rec, *p.Headers)
	}
	if authChanged {
		return checkHeaders(storedHeaders(rec), rec.BasicAuth != nil)
	}
	return nil
}

// applyHeaders validates and stores an endpoint's new custom headers,
// sealing the secret ones.
func (s *Store) applyHeaders(rec *endpointRecord, in map[string]HeaderValue) error {
	check := make(map[string]string, len(in))
	for name, h := range in {
		if !h.Keep {
			check[name] = h.Value
			continue
		}
		if _, ok := rec.SecretHeaders[name]; !ok {
			return invalid("headers."+name, "needs a value: the endpoint has no secret header %q to keep", name)
		}
		check[name] = ""
	}
	if err := checkHeaders(check, rec.BasicAuth != nil); err != nil {
		return err
	}
	plain := map[string]string{}
	sealed := map[string][]byte{}
	for name, h := range in {
		switch {
		case h.Keep:
			sealed[name] = rec.SecretHeaders[name]
		case h.Secret || webhookheaders.Credential(name):
			b, err := s.seal(rec.ID, headerPurpose(name), h.Value)
			if err != nil {
				return err
			}
			sealed[name] = b
		default:
			plain[name] = h.Value
		}
	}
	rec.Headers, rec.SecretHeaders = nil, nil
	if len(plain) > 0 {
		rec.Headers = plain
	}
	if len(sealed) > 0 {
		rec.SecretHeaders = sealed
	}
	return nil
}

// storedHeaders is the names of an endpoint's custom headers with the
// values of the plain ones, for checkHeaders (secret values were checked
// when set).
func storedHeaders(rec *endpointRecord) map[string]string {
	out := maps.Clone(rec.Headers)
	if out == nil {
		out = map[string]string{}
	}
	for name := range rec.SecretHeaders {
		out[name] = ""
	}
	return out
}

// sealCredentialHeaders moves headers stored in clear under a credential
// name (written before secret headers existed) into the sealed ones.
func (s *Store) sealCredentialHeaders(rec *endpointRecord) error {
	for name, value := range rec.Headers {
		if !webhookheaders.Credential(name) {
			continue
		}
		b, err := s.seal(rec.ID, headerPurpose(name), value)
		if err != nil {
			return err
		}
		if rec.SecretHeaders == nil {
			rec.SecretHeaders = map[string][]byte{}
		}
		rec.SecretHeaders[name] = b
		delete(rec.Headers, name)
	}
	if len(rec.Headers) == 0 {
		rec.Headers = nil
	}
	return nil
}

// applyBasicAuth applies the basic-auth part of a patch and reports whether
// it changed whether credentials are set.
func (s *Store) applyBasicAuth(rec *endpointRecord, p EndpointPatch) (bool, error) {
	had := rec.BasicAuth != nil
	switch {
	case p.RemoveBasicAuth:
		rec.BasicAuth = nil
	case p.BasicAuth != nil:
		if err := checkCredential("basic_auth.username", p.BasicAuth.Username, false); err != nil {
			return false, err
		}
		next := &basicAuthRecord{Username: p.BasicAuth.Username}
		switch {
		case p.BasicAuth.Password != nil:
			if err := checkCredential("basic_auth.password", *p.BasicAuth.Password, true); err != nil {
				return false, err
			}
			sealed, err := s.seal(rec.ID, purposeBasicAuth, *p.BasicAuth.Password)
			if err != nil {
				return false, err
			}
			next.SealedPassword = sealed
		case had:
			next.SealedPassword = rec.BasicAuth.SealedPassword
		default:
			return false, invalid("basic_auth.password", "is required")
		}
		rec.BasicAuth = next
	}
	return had != (rec.BasicAuth != nil), nil
}
