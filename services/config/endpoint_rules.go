package config

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pulsehooks/pulsehooks/pkg/webhookheaders"
)

// Limits of endpoint fields.
const (
	maxDescriptionLen   = 1024
	maxFilterTypes      = 100
	maxHeaderNameLen    = 128
	maxHeaderValueLen   = 4096
	maxCredentialLen    = 256
	minTimeoutSeconds   = 1
	maxTimeoutSeconds   = 30
	defaultTimeoutSecs  = 15
	maxRateLimit        = 10000
	maxGracePeriodHours = 7 * 24
)

// checkDescription checks a free-text description.
func checkDescription(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case !utf8.ValidString(s):
		return "", invalid(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > maxDescriptionLen:
		return "", invalid(field, "must be at most %d characters", maxDescriptionLen)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }):
		return "", invalid(field, "must not contain control characters")
	}
	return s, nil
}

// checkEventTypes checks an endpoint's filter: known catalog entries, each
// listed once. An empty filter subscribes to every event type.
func (s *Store) checkEventTypes(ctx context.Context, names []string) ([]string, error) {
	if len(names) > maxFilterTypes {
		return nil, invalid("event_types", "lists %d event types; at most %d are allowed (an empty list means all)", len(names), maxFilterTypes)
	}
	seen := map[string]bool{}
	for i, name := range names {
		field := fmt.Sprintf("event_types[%d]", i)
		if err := checkEventTypeName(field, name); err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, invalid(field, "%q is listed twice", name)
		}
		seen[name] = true
		ok, err := s.eventTypeExists(ctx, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, invalid(field, "%q is not in the event-type catalog (GET /v1/event-types lists it)", name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	return names, nil
}

// isTokenChar reports whether c may appear in an HTTP field name (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// reservedHeader says why a custom header may not be set, or "" if it may:
// the names pkg/webhookheaders reserves (delivery never sends them), and
// Authorization next to basic auth.
func reservedHeader(name string, basicAuth bool) string {
	if why := webhookheaders.Why(name); why != "" {
		return why
	}
	if basicAuth && strings.EqualFold(name, "authorization") {
		return "conflicts with basic_auth; set one or the other"
	}
	return ""
}

// checkHeaders checks an endpoint's custom headers: valid names and values,
// none reserved, no name twice in different case. How many an endpoint may
// have is the tenant's quota (checkHeaderQuota).
func checkHeaders(h map[string]string, basicAuth bool) error {
	seen := map[string]string{}
	for name, value := range h {
		field := "headers." + name
		if name == "" || len(name) > maxHeaderNameLen {
			return invalid("headers", "header names must be 1 to %d characters", maxHeaderNameLen)
		}
		for i := 0; i < len(name); i++ {
			if !isTokenChar(name[i]) {
				return invalid(field, "%q is not a valid header name (letters, digits and !#$%%&'*+-.^_`|~ only)", name)
			}
		}
		if why := reservedHeader(name, basicAuth); why != "" {
			return invalid(field, "header %q cannot be set: it %s", name, why)
		}
		lower := strings.ToLower(name)
		if other, dup := seen[lower]; dup {
			return invalid(field, "header %q is also given as %q; header names are case-insensitive", name, other)
		}
		seen[lower] = name
		if len(value) > maxHeaderValueLen {
			return invalid(field, "value is longer than %d bytes", maxHeaderValueLen)
		}
		if !utf8.ValidString(value) || strings.ContainsFunc(value, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }) {
			return invalid(field, "value must be valid UTF-8 without control characters such as line breaks")
		}
	}
	return nil
}

// checkCredential checks a basic-auth username or password.
func checkCredential(field, s string, allowColon bool) error {
	switch {
	case s == "":
		return invalid(field, "is required")
	case len(s) > maxCredentialLen:
		return invalid(field, "must be at most %d bytes", maxCredentialLen)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return invalid(field, "must be valid UTF-8 without control characters")
	case !allowColon && strings.Contains(s, ":"):
		return invalid(field, "must not contain ':' (RFC 7617)")
	}
	return nil
}

// checkTimeout converts a per-attempt timeout in seconds to milliseconds.
func checkTimeout(seconds int) (uint32, error) {
	if seconds < minTimeoutSeconds || seconds > maxTimeoutSeconds {
		return 0, invalid("timeout_seconds", "must be between %d and %d, got %d", minTimeoutSeconds, maxTimeoutSeconds, seconds)
	}
	return uint32(seconds) * 1000, nil
}

// checkRateLimit checks a requests-per-second limit (0 = unlimited).
func checkRateLimit(rps int) (uint32, error) {
	if rps < 0 || rps > maxRateLimit {
		return 0, invalid("rate_limit", "must be between 0 (unlimited) and %d requests per second, got %d", maxRateLimit, rps)
	}
	return uint32(rps), nil
}
