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
	"unicode/utf8"
)

// ErrBlocked is wrapped by every error for a refused address.
var ErrBlocked = errors.New("address not allowed")

// ErrZone is wrapped by the error CheckURL returns for a URL whose host is an
// IPv6 address with a zone identifier ("[fe80::1%25eth0]"). A zone names a
// local interface; no webhook endpoint needs one.
var ErrZone = errors.New("IPv6 zone identifiers are not allowed")

// ErrNumericHost is wrapped by the error CheckURL returns for a host that is
// an IPv4 address in a non-canonical spelling (decimal "2130706433", octal
// "0177.0.0.1", hex "0x7f.0.0.1", short "127.1", trailing dot "127.0.0.1.").
// Resolvers disagree about what these mean, so none is accepted.
var ErrNumericHost = errors.New("host is a numeric address in a non-canonical form; write IPv4 addresses as four decimal numbers")

// blocked lists the ranges refused unless allowed: every range of the IANA
// IPv4 and IPv6 special-purpose address registries that is not globally
// reachable, multicast and the limited broadcast address, and IPv6 outside
// global unicast (2000::/3). IPv4-mapped addresses are checked as the IPv4
// address they map to, and the IPv4 address embedded in NAT64 (64:ff9b::/96)
// and 6to4 (2002::/16) addresses is checked too (see embeddedIPv4).
//
// 2001::/23 (IETF protocol assignments, Teredo among them) is blocked whole,
// although IANA marks a few entries in it globally reachable (2001:1::1-3,
// 2001:3::/32, 2001:4:112::/48, 2001:20::/28, 2001:30::/28): anycast and
// relay services, ORCHID identifiers, none of them a webhook receiver.
var blocked = mustPrefixes(
	// IPv4 special-purpose registry (RFC 6890 and updates).
	"0.0.0.0/8",       // "this network"
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // shared address space (CGNAT; Alibaba metadata 100.100.100.200)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local (cloud metadata 169.254.169.254)
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments (DS-Lite, NAT64 discovery…)
	"192.0.2.0/24",    // documentation TEST-NET-1
	"192.88.99.0/24",  // deprecated 6to4 relay anycast (RFC 7526)
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation TEST-NET-2
	"203.0.113.0/24",  // documentation TEST-NET-3
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, with 255.255.255.255 limited broadcast
	// IPv6 special-purpose registry (RFC 6890 and updates).
	"::/128",         // unspecified
	"::1/128",        // loopback
	"::/96",          // IPv4-compatible, deprecated (RFC 4291): [::7f00:1]
	"::ffff:0:0/96",  // IPv4-mapped (checked unmapped first; kept for completeness)
	"64:ff9b:1::/48", // local-use IPv4/IPv6 translation (RFC 8215)
	"100::/64",       // discard-only
	"100:0:0:1::/64", // dummy IPv6 prefix (RFC 9780)
	"2001::/23",      // IETF protocol assignments: Teredo, benchmarking, ORCHID…
	"2001:db8::/32",  // documentation
	"3fff::/20",      // documentation (RFC 9637)
	"5f00::/16",      // SRv6 SIDs
	"fc00::/7",       // unique local (AWS metadata fd00:ec2::254)
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local, deprecated (RFC 3879)
	"ff00::/8",       // multicast
)

// globalUnicast is the only IPv6 space IANA allocates for global unicast;
// an IPv6 address outside it, other than a NAT64 one, is refused.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// Prefixes whose addresses embed an IPv4 address that is checked as well.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: IPv4 in the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")    // RFC 3056: IPv4 in bits 16-47
)

// hostAddrs maps host names that always mean a blocked address to it:
// loopback names from /etc/hosts and cloud metadata names. Names under
// .localhost are loopback too (RFC 6761).
var hostAddrs = map[string]netip.Addr{
	"localhost":                  netip.MustParseAddr("127.0.0.1"),
	"localhost.localdomain":      netip.MustParseAddr("127.0.0.1"),
	"ip6-localhost":              netip.MustParseAddr("::1"),
	"ip6-loopback":               netip.MustParseAddr("::1"),
	"metadata":                   netip.MustParseAddr("169.254.169.254"),
	"metadata.google.internal":   netip.MustParseAddr("169.254.169.254"),
	"metadata.goog":              netip.MustParseAddr("169.254.169.254"),
	"instance-data":              netip.MustParseAddr("169.254.169.254"),
	"instance-data.ec2.internal": netip.MustParseAddr("169.254.169.254"),
}

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

// Check returns an error wrapping ErrBlocked when ip may not be reached. A
// zone is ignored: fe80::1%eth0 is checked as fe80::1. An address the Allow
// list contains is allowed; so is a NAT64 or 6to4 address whose embedded IPv4
// address the Allow list contains.
func (p Policy) Check(ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrBlocked)
	}
	if p.allowed(ip) {
		return nil
	}
	if err := checkBlocked(ip); err != nil {
		return err
	}
	if v4, ok := embeddedIPv4(ip); ok {
		if p.allowed(v4) {
			return nil
		}
		if err := checkBlocked(v4); err != nil {
			return fmt.Errorf("%s embeds %s: %w", ip, v4, err)
		}
	}
	return nil
}

func (p Policy) allowed(ip netip.Addr) bool {
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return true
		}
	}
	return false
}

// checkBlocked checks an unzoned, unmapped address against the blocked set.
func checkBlocked(ip netip.Addr) error {
	for _, b := range blocked {
		if b.Contains(ip) {
			return fmt.Errorf("%w: %s is in the reserved range %s", ErrBlocked, ip, b)
		}
	}
	if ip.Is6() && !globalUnicast.Contains(ip) && !nat64WellKnown.Contains(ip) {
		return fmt.Errorf("%w: %s is outside IPv6 global unicast %s", ErrBlocked, ip, globalUnicast)
	}
	return nil
}

// embeddedIPv4 returns the IPv4 address a NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) address leads to.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64WellKnown.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Control is a net.Dialer Control function that refuses blocked addresses.
// It sees the address actually dialled, after DNS resolution; a zone on it
// is ignored by the check.
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

// CheckURL validates a webhook URL: valid UTF-8, http or https, a host, no user info, no
// fragment, and, when the host is a literal address, one the policy allows
// and without an IPv6 zone (ErrZone). Hosts that spell an IPv4 address in a
// non-canonical form are refused (ErrNumericHost); localhost, names under
// .localhost and cloud metadata names are checked as the address they stand
// for. Other host names are checked again at dial time. When resolve is
// true, host names are resolved now and every address must be allowed.
func (p Policy) CheckURL(ctx context.Context, raw string, resolve bool) error {
	if len(raw) > 2048 {
		return errors.New("URL is longer than 2048 characters")
	}
	if !utf8.ValidString(raw) {
		return errors.New("URL is not valid UTF-8")
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
	if strings.Contains(host, "%") {
		return ErrZone
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return p.Check(a)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if numericHost(name) {
		return fmt.Errorf("%w: %q", ErrNumericHost, host)
	}
	if a, ok := hostAddrs[name]; ok {
		return p.checkName(host, a)
	}
	if strings.HasSuffix(name, ".localhost") {
		return p.checkName(host, netip.MustParseAddr("127.0.0.1"))
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

func (p Policy) checkName(host string, a netip.Addr) error {
	if err := p.Check(a); err != nil {
		return fmt.Errorf("host %q stands for %s: %w", host, a, err)
	}
	return nil
}

// numericHost reports whether a lower-case host, trailing dot removed, would
// be read as an IPv4 address by a WHATWG URL parser or inet_aton: its last
// label is a decimal number or 0x followed by hex digits. Canonical
// dotted-quad addresses are parsed before this is asked.
func numericHost(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if last == "" {
		return false
	}
	if h, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}
