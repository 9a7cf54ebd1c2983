// Package ssrf stops outbound webhook requests from reaching private, loopback,
// link-local and metadata addresses. The check runs at dial time, on the
// address actually dialled after DNS resolution, so DNS rebinding cannot
// bypass it; an operator allowlist re-opens chosen ranges (tests, local dev).
package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrBlocked is wrapped by every error for a refused address.
var ErrBlocked = errors.New("address not allowed")

// blocked lists the ranges refused unless allowed: private, loopback,
// link-local (with cloud metadata at 169.254.169.254), CGNAT, multicast,
// unspecified and documentation ranges, and their IPv6 counterparts.
var blocked = mustPrefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	"::/128", "::1/128", "64:ff9b::/96", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Policy decides which addresses outbound requests may reach.
type Policy struct {
	// Allow lists ranges permitted even though they are private.
	Allow []netip.Prefix
}

// ParseAllowlist parses a comma-separated list of CIDR prefixes or addresses.
// "private" (or "*") allows every address.
func ParseAllowlist(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "":
			continue
		case "private", "*":
			out = append(out, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("allowlist entry %q is neither a CIDR prefix nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Check returns an error wrapping ErrBlocked when ip may not be reached.
func (p Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	for _, b := range blocked {
		if b.Contains(ip) {
			return fmt.Errorf("%w: %s is in the reserved range %s", ErrBlocked, ip, b)
		}
	}
	return nil
}

// Control is a net.Dialer Control function that refuses blocked addresses.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialled address %q", ErrBlocked, address)
	}
	return p.Check(ap.Addr())
}

// Dialer returns a dialer that applies the policy to every connection.
func (p Policy) Dialer(base *net.Dialer) *net.Dialer {
	d := *base
	d.Control = p.Control
	return &d
}

// CheckURL validates a webhook URL: http or https, a host, no user info, and,
// when the host is a literal address, one the policy allows. Host names are
// checked again at dial time. When resolve is true, host names are resolved
// now and every address must be allowed.
func (p Policy) CheckURL(ctx context.Context, raw string, resolve bool) error {
	if len(raw) > 2048 {
		return errors.New("URL is longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("URL is not valid: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("URL scheme must be http or https, not %q", u.Scheme)
	}
	if u.User != nil {
		return errors.New("URL must not contain user info; use basic auth settings instead")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("URL has no host")
	}
	if u.Fragment != "" {
		return errors.New("URL must not contain a fragment")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return p.Check(a)
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return p.Check(netip.MustParseAddr("127.0.0.1"))
	}
	if !resolve {
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("host %q does not resolve: %w", host, err)
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			return fmt.Errorf("host %q: %w", host, err)
		}
	}
	return nil
}
