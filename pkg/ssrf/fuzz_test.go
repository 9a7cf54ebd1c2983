package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzCheck checks that no alternate spelling of an address turns a refusal
// into an acceptance: a zone, the IPv4-mapped, IPv4-compatible, NAT64 and
// 6to4 forms of a refused IPv4 address are all refused.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, "lo")
	f.Add([]byte{169, 254, 169, 254}, "eth0")
	f.Add([]byte{8, 8, 8, 8}, "1")
	f.Add(netip.MustParseAddr("fe80::1").AsSlice(), "lo")
	f.Add(netip.MustParseAddr("fd00:ec2::254").AsSlice(), "eth0")
	f.Add(netip.MustParseAddr("2606:4700::1111").AsSlice(), "x")
	p := Policy{}
	f.Fuzz(func(t *testing.T, b []byte, zone string) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		refused := errors.Is(p.Check(a), ErrBlocked)
		if a.Is6() && zone != "" {
			if z := a.WithZone(zone); refused && p.Check(z) == nil {
				t.Fatalf("Check(%s) refuses but Check(%s) allows", a, z)
			}
		}
		if !a.Is4() {
			return
		}
		v4 := a.As4()
		forms := []netip.Addr{
			netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]}),
			netip.AddrFrom16([16]byte{0, 0x64, 0xff, 0x9b, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]}),
			netip.AddrFrom16([16]byte{0x20, 0x02, v4[0], v4[1], v4[2], v4[3], 15: 1}),
		}
		for _, form := range forms {
			if refused && p.Check(form) == nil {
				t.Fatalf("Check(%s) refuses but Check(%s) allows", a, form)
			}
			if zone != "" && refused && p.Check(form.WithZone(zone)) == nil {
				t.Fatalf("Check(%s) refuses but Check(%s) allows", a, form.WithZone(zone))
			}
		}
		compat := netip.AddrFrom16([16]byte{12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]})
		if p.Check(compat) == nil {
			t.Fatalf("Check(%s) allows a deprecated IPv4-compatible address", compat)
		}
	})
}

// FuzzCheckURL feeds arbitrary URLs to CheckURL: it must not panic, must
// never accept a zone, and a URL it accepts whose host is an address must be
// dialled (Control) with the same verdict.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"http://[::1%25lo]:8080/", "http://[fe80::1%25eth0]/", "http://2130706433/", "http://0x7f.0.0.1/",
		"http://127.1/", "http://localhost./", "https://example.com/hook", "http://[::ffff:127.0.0.1]/",
		"http://[64:ff9b::a00:1]/", "http://[2002:7f00:1::]/", "https://8.8.8.8:443/x?y=1", "http://metadata.google.internal/",
	} {
		f.Add(s)
	}
	p := Policy{}
	f.Fuzz(func(t *testing.T, raw string) {
		err := p.CheckURL(context.Background(), raw, false)
		if err != nil {
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("CheckURL accepted %q, which url.Parse refuses: %v", raw, perr)
		}
		host := u.Hostname()
		if strings.Contains(host, "%") {
			t.Fatalf("CheckURL accepted %q, whose host %q has a zone", raw, host)
		}
		if a, perr := netip.ParseAddr(host); perr == nil {
			if cerr := p.Control("tcp", netip.AddrPortFrom(a, 80).String(), nil); cerr != nil {
				t.Fatalf("CheckURL accepted %q but Control refuses %s: %v", raw, a, cerr)
			}
		}
	})
}

// FuzzSpellings writes one IPv4 address in every spelling a URL parser or a
// resolver may read as it, with and without a zone and trailing dot: when
// CheckURL refuses the canonical form it must refuse every other.
func FuzzSpellings(f *testing.F) {
	f.Add(byte(127), byte(0), byte(0), byte(1), "lo")
	f.Add(byte(10), byte(0), byte(0), byte(1), "1")
	f.Add(byte(169), byte(254), byte(169), byte(254), "eth0")
	f.Add(byte(8), byte(8), byte(4), byte(4), "")
	p := Policy{}
	f.Fuzz(func(t *testing.T, a, b, c, d byte, zone string) {
		canonical := fmt.Sprintf("%d.%d.%d.%d", a, b, c, d)
		if p.CheckURL(context.Background(), "http://"+canonical+"/", false) == nil {
			return
		}
		n := uint32(a)<<24 | uint32(b)<<16 | uint32(c)<<8 | uint32(d)
		z := url.PathEscape(zone)
		hosts := []string{
			canonical + ".",
			fmt.Sprint(n),
			fmt.Sprintf("0x%x", n),
			fmt.Sprintf("0%o.0%o.0%o.0%o", a, b, c, d),
			fmt.Sprintf("0x%x.0x%x.0x%x.0x%x", a, b, c, d),
			fmt.Sprintf("%d.%d", a, uint32(b)<<16|uint32(c)<<8|uint32(d)),
			fmt.Sprintf("%d.%d.%d", a, b, uint32(c)<<8|uint32(d)),
			fmt.Sprintf("%03d.%03d.%03d.%03d", a, b, c, d),
			"[::ffff:" + canonical + "]",
			fmt.Sprintf("[::ffff:%x:%x]", uint16(a)<<8|uint16(b), uint16(c)<<8|uint16(d)),
			"[::" + canonical + "]",
			"[64:ff9b::" + canonical + "]",
			fmt.Sprintf("[2002:%x:%x::1]", uint16(a)<<8|uint16(b), uint16(c)<<8|uint16(d)),
			"[::ffff:" + canonical + "%25" + z + "]",
			"[64:ff9b::" + canonical + "%25" + z + "]",
		}
		for _, h := range hosts {
			raw := "http://" + h + ":8080/"
			if p.CheckURL(context.Background(), raw, false) == nil {
				t.Fatalf("CheckURL refuses %s but accepts %q", canonical, raw)
			}
		}
	})
}
