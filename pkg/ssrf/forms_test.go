package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Verdicts of a real dial through the policy dialer.
const (
	dialBlocked = "blocked" // Control refused the resolved address (ErrBlocked)
	dialNoHost  = "no-host" // the resolver refused the name; nothing was dialled
	dialSkip    = ""        // not dialled: a public address, unreachable from tests
)

// TestAddressForms lists the spellings of private, loopback and metadata
// addresses an endpoint URL can use, with the verdict at creation
// (CheckURL, as the config service validates a URL), at dial time (Control
// on the address the dialer resolves the host to) and for a real dial
// against a listener on every local address, with a resolver that answers
// every name with a loopback address (metadata names with 169.254.169.254),
// as a DNS-rebinding attacker's would.
func TestAddressForms(t *testing.T) {
	tests := []struct {
		name       string
		host       string // URL host, as written in the URL
		wantCreate error  // nil: accepted at creation
		resolved   string // address the dialer passes to Control
		wantDial   bool   // Control refuses resolved
		real       string // verdict of a real dial
	}{
		{"loopback with zone name", "[::1%25lo]", ErrZone, "[::1%lo]:80", true, dialBlocked},
		{"loopback with zone index", "[::1%251]", ErrZone, "[::1%1]:80", true, dialBlocked},
		{"link-local with zone", "[fe80::1%25lo]", ErrZone, "[fe80::1%lo]:80", true, dialBlocked},
		{"AWS IPv6 metadata with zone", "[fd00:ec2::254%25eth0]", ErrZone, "[fd00:ec2::254%eth0]:80", true, dialBlocked},
		{"AWS IPv6 metadata", "[fd00:ec2::254]", ErrBlocked, "[fd00:ec2::254]:80", true, dialBlocked},
		{"IPv6 loopback", "[::1]", ErrBlocked, "[::1]:80", true, dialBlocked},
		{"IPv4-compatible loopback", "[::7f00:1]", ErrBlocked, "[::7f00:1]:80", true, dialBlocked},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]", ErrBlocked, "127.0.0.1:80", true, dialBlocked},
		{"IPv4-mapped loopback in hex", "[::ffff:7f00:1]", ErrBlocked, "127.0.0.1:80", true, dialBlocked},
		{"NAT64 private", "[64:ff9b::a00:1]", ErrBlocked, "[64:ff9b::a00:1]:80", true, dialBlocked},
		{"NAT64 metadata", "[64:ff9b::a9fe:a9fe]", ErrBlocked, "[64:ff9b::a9fe:a9fe]:80", true, dialBlocked},
		{"local-use NAT64", "[64:ff9b:1::808:808]", ErrBlocked, "[64:ff9b:1::808:808]:80", true, dialBlocked},
		{"6to4 loopback", "[2002:7f00:1::]", ErrBlocked, "[2002:7f00:1::]:80", true, dialBlocked},
		{"6to4 metadata", "[2002:a9fe:a9fe::1]", ErrBlocked, "[2002:a9fe:a9fe::1]:80", true, dialBlocked},
		{"Teredo", "[2001:0:4136:e378:8000:63bf:3fff:fdd2]", ErrBlocked, "[2001:0:4136:e378:8000:63bf:3fff:fdd2]:80", true, dialBlocked},
		{"decimal", "2130706433", ErrNumericHost, "127.0.0.1:80", true, dialNoHost},
		{"octal", "0177.0.0.1", ErrNumericHost, "127.0.0.1:80", true, dialNoHost},
		{"hex", "0x7f.0.0.1", ErrNumericHost, "127.0.0.1:80", true, dialBlocked},
		{"hex word", "0x7f000001", ErrNumericHost, "127.0.0.1:80", true, dialBlocked},
		{"short", "127.1", ErrNumericHost, "127.0.0.1:80", true, dialNoHost},
		{"leading zeros", "127.000.000.001", ErrNumericHost, "127.0.0.1:80", true, dialNoHost},
		{"IPv4 with trailing dot", "127.0.0.1.", ErrNumericHost, "127.0.0.1:80", true, dialNoHost},
		{"localhost with trailing dot", "localhost.", ErrBlocked, "127.0.0.1:80", true, dialBlocked},
		{"localhost in capitals", "LOCALHOST", ErrBlocked, "127.0.0.1:80", true, dialBlocked},
		{"name under localhost", "foo.localhost", ErrBlocked, "[::1]:80", true, dialBlocked},
		{"name under localhost with trailing dot", "foo.LocalHost.", ErrBlocked, "127.0.0.1:80", true, dialBlocked},
		{"ip6-localhost", "ip6-localhost", ErrBlocked, "[::1]:80", true, dialBlocked},
		{"metadata address", "169.254.169.254", ErrBlocked, "169.254.169.254:80", true, dialBlocked},
		{"GCP metadata name", "metadata.google.internal", ErrBlocked, "169.254.169.254:80", true, dialBlocked},
		{"GCP metadata name with trailing dot", "Metadata.Google.Internal.", ErrBlocked, "169.254.169.254:80", true, dialBlocked},
		{"short metadata name", "metadata", ErrBlocked, "169.254.169.254:80", true, dialBlocked},
		{"AWS metadata name", "instance-data.ec2.internal", ErrBlocked, "169.254.169.254:80", true, dialBlocked},
		{"Alibaba metadata", "100.100.100.200", ErrBlocked, "100.100.100.200:80", true, dialBlocked},
		{"unspecified", "0.0.0.0", ErrBlocked, "0.0.0.0:80", true, dialBlocked},
		{"IPv6 unspecified", "[::]", ErrBlocked, "[::]:80", true, dialBlocked},
		{"broadcast", "255.255.255.255", ErrBlocked, "255.255.255.255:80", true, dialSkip},
		{"public name", "example.com", nil, "93.184.215.14:443", false, dialSkip},
		{"public IPv4", "8.8.8.8", nil, "8.8.8.8:443", false, dialSkip},
		{"public IPv6", "[2606:4700::1111]", nil, "[2606:4700::1111]:443", false, dialSkip},
		{"IPv4-mapped public", "[::ffff:8.8.8.8]", nil, "8.8.8.8:443", false, dialSkip},
		{"NAT64 public", "[64:ff9b::808:808]", nil, "[64:ff9b::808:808]:443", false, dialSkip},
		{"6to4 public", "[2002:808:808::1]", nil, "[2002:808:808::1]:443", false, dialSkip},
		{"name ending in a digit-led label", "api.1password.com", nil, "104.16.0.1:443", false, dialSkip},
	}

	port, hits := listenEverywhere(t)
	resolver := rebindingResolver(t)
	p := Policy{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "http://" + tt.host + "/hook"
			err := p.CheckURL(context.Background(), raw, false)
			switch {
			case tt.wantCreate == nil && err != nil:
				t.Errorf("CheckURL(%q) = %v, want accepted", raw, err)
			case tt.wantCreate != nil && !errors.Is(err, tt.wantCreate):
				t.Errorf("CheckURL(%q) = %v, want an error wrapping %q", raw, err, tt.wantCreate)
			}

			err = p.Control("tcp", tt.resolved, nil)
			if got := errors.Is(err, ErrBlocked); got != tt.wantDial {
				t.Errorf("Control(%q) = %v, want blocked %v", tt.resolved, err, tt.wantDial)
			}

			if tt.real == dialSkip {
				return
			}
			before := hits.Load()
			got, err := realDial(resolver, p, fmt.Sprintf("http://%s:%d/hook", tt.host, port))
			if got != tt.real {
				t.Errorf("real dial of %s: %s (%v), want %s", tt.host, got, err, tt.real)
			}
			if n := hits.Load() - before; n != 0 {
				t.Errorf("real dial of %s reached the listener %d times", tt.host, n)
			}
		})
	}
}

// TestAllowedZone checks that the allowlist still applies to a zoned
// address: the zone is stripped, not a reason to refuse or allow.
func TestAllowedZone(t *testing.T) {
	p := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")}}
	for _, tt := range []struct {
		addr    string
		blocked bool
	}{
		{"[::1%lo]:80", false},
		{"[::1%1]:80", false},
		{"[fe80::1%lo]:80", true},
		{"[64:ff9b::a00:1]:80", false}, // NAT64 to an allowed IPv4 address
		{"[2002:a00:1::]:80", false},   // 6to4 to an allowed IPv4 address
		{"[2002:7f00:1::]:80", true},
	} {
		err := p.Control("tcp", tt.addr, nil)
		if got := errors.Is(err, ErrBlocked); got != tt.blocked {
			t.Errorf("Control(%q) with ::1 and 10/8 allowed = %v, want blocked %v", tt.addr, err, tt.blocked)
		}
	}
}

// realDial sends a GET through the policy dialer, resolving names with r,
// and says how it failed.
func realDial(r *net.Resolver, p Policy, url string) (string, error) {
	d := p.Dialer(&net.Dialer{Timeout: 2 * time.Second, Resolver: r})
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil}}
	resp, err := client.Get(url)
	if err == nil {
		resp.Body.Close()
		return "connected", nil
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, ErrBlocked):
		return dialBlocked, err
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return dialNoHost, err
	}
	return "other error", err
}

// listenEverywhere starts an HTTP server on every local address (dual-stack
// wildcard) and counts the requests it gets.
func listenEverywhere(t *testing.T) (int, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	hits := new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, hits
}

// rebindingResolver returns a resolver whose DNS server answers every name
// with 127.0.0.1 and ::1, and metadata names with 169.254.169.254.
func rebindingResolver(t *testing.T) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp, err := rebindingAnswer(buf[:n]); err == nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
}

func rebindingAnswer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	metadata := strings.Contains(strings.ToLower(q.Name.String()), "metadata") || strings.HasPrefix(strings.ToLower(q.Name.String()), "instance-data")
	switch {
	case q.Type == dnsmessage.TypeA && metadata:
		err = b.AResource(rh, dnsmessage.AResource{A: [4]byte{169, 254, 169, 254}})
	case q.Type == dnsmessage.TypeA:
		err = b.AResource(rh, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}})
	case q.Type == dnsmessage.TypeAAAA && !metadata:
		err = b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: netip.IPv6Loopback().As16()})
	}
	if err != nil {
		return nil, err
	}
	return b.Finish()
}
