package config

import (
	"context"
	"errors"
	"maps"
	"strings"

	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
)

// BasicAuthPatch sets basic-auth credentials; a nil Password keeps the
// current password.
type BasicAuthPatch struct {
	Username string
	Password *string
}

// EndpointPatch changes the fields that are not nil. EventTypes and Headers
// replace the whole list or map.
type EndpointPatch struct {
	URL             *string
	Description     *string
	EventTypes      *[]string
	Headers         *map[string]string
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
		rec.Headers = maps.Clone(*p.Headers)
		if len(rec.Headers) == 0 {
			rec.Headers = nil
		}
	}
	if p.Headers != nil || authChanged {
		return checkHeaders(rec.Headers, rec.BasicAuth != nil)
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
