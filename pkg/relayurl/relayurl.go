// Package relayurl names the URLs of relay endpoints: endpoints whose
// deliveries the config service relays to a developer's `pulsehooks listen`
// client. A relay endpoint's URL is <relay base>/relay/v1/<endpoint id>. The
// config service makes such URLs; the delivery service recognises them, by
// an exact match on scheme, host and path, to reach the relay route even
// when the relay base is an internal address its SSRF policy would refuse.
package relayurl

import (
	"fmt"
	"net/url"
	"strings"
)

// PathPrefix is the path, under the relay base, of the relay routes.
const PathPrefix = "/relay/v1/"

// Base is a parsed relay base URL, such as http://pulsehooks-config:8080.
// The zero Base matches nothing.
type Base struct {
	scheme string
	host   string // lower case, with the port if the base names one
	path   string // without a trailing slash
}

// Parse parses a relay base URL: http or https, a host, an optional path, no
// user info, query or fragment.
func Parse(raw string) (Base, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Base{}, fmt.Errorf("relay URL %q is not a URL: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Base{}, fmt.Errorf("relay URL %q must be an http or https base URL such as http://pulsehooks-config:8080", raw)
	}
	return Base{scheme: u.Scheme, host: strings.ToLower(u.Host), path: strings.TrimRight(u.EscapedPath(), "/")}, nil
}

// IsZero reports whether b is the zero Base.
func (b Base) IsZero() bool { return b.host == "" }

// String returns the base URL.
func (b Base) String() string {
	if b.IsZero() {
		return ""
	}
	return b.scheme + "://" + b.host + b.path
}

// Host returns the base's host, with its port if it names one.
func (b Base) Host() string { return b.host }

// EndpointURL returns the relay URL of an endpoint.
func (b Base) EndpointURL(endpointID string) string {
	return b.String() + PathPrefix + endpointID
}

// Match reports whether u is the relay URL of an endpoint under b, and
// which. It matches only the exact form EndpointURL makes (the host compared
// without regard to case): the same scheme and host, the path
// <base path>/relay/v1/<id> with one plain segment, no user info, query or
// fragment.
func (b Base) Match(u *url.URL) (endpointID string, ok bool) {
	if b.IsZero() || u == nil || u.Scheme != b.scheme || !strings.EqualFold(u.Host, b.host) ||
		u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	id, found := strings.CutPrefix(u.EscapedPath(), b.path+PathPrefix)
	if !found || !validID(id) {
		return "", false
	}
	return id, true
}

// MatchString is Match for a URL in text form.
func (b Base) MatchString(raw string) (endpointID string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false
	}
	return b.Match(u)
}

// validID reports whether s can be an endpoint id: letters, digits and '_'.
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		default:
			return false
		}
	}
	return true
}
