package config

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	configv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/config/v1"
)

const (
	// maxDisabledReason bounds the stored reason of a system disable, in bytes.
	maxDisabledReason = 256
	// defaultDisabledReason is stored when the caller gives no reason.
	defaultDisabledReason = "disabled by the system"
)

// errAlreadyDisabled stops a disable that has nothing to change.
var errAlreadyDisabled = errors.New("endpoint already disabled")

// DisableEndpoint disables a tenant's endpoint on behalf of the system (the
// delivery service, after 410 Gone or a long run of failures) and stores the
// reason as its disabled_reason. The write checks the revision it read, like
// every endpoint update, and waits until this replica's state (and so every
// Watch subscriber) has it. changed is false when the endpoint was already
// disabled; nothing is written then.
func (s *Store) DisableEndpoint(ctx context.Context, tenantID, id, reason string) (ep *configv1.Endpoint, changed bool, err error) {
	reason = cleanReason(reason)
	ep, err = s.modifyEndpoint(ctx, tenantID, id, func(rec *endpointRecord) error {
		if !rec.Enabled {
			return errAlreadyDisabled
		}
		rec.Enabled = false
		rec.DisabledReason = reason
		return nil
	})
	switch {
	case errors.Is(err, errAlreadyDisabled):
		var rec endpointRecord
		rev, found, err := getJSON(ctx, s.endpoints, endpointKey(tenantID, id), &rec)
		if err != nil {
			return nil, false, err
		}
		if !found {
			return nil, false, notFound("endpoint", id)
		}
		ep, err := s.endpointProto(&rec, rev)
		return ep, false, err
	case err != nil:
		return nil, false, fmt.Errorf("disable endpoint: %w", err)
	}
	s.log.WarnContext(ctx, "endpoint disabled by the system", "tenant_id", tenantID, "endpoint_id", id, "reason", reason)
	return ep, true, nil
}

// cleanReason makes a reason fit to store and show: printable, at most
// maxDisabledReason bytes, never empty.
func cleanReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	reason = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, reason))
	if len(reason) > maxDisabledReason {
		n := maxDisabledReason
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	if reason == "" {
		return defaultDisabledReason
	}
	return reason
}
