package ssrf

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestCheck(t *testing.T) {
	p := Policy{}
	for _, tc := range []struct {
		ip      string
		blocked bool
	}{
		{"127.0.0.1", true}, {"10.1.2.3", true}, {"172.16.0.1", true}, {"192.168.1.1", true},
		{"169.254.169.254", true}, {"100.64.0.1", true}, {"0.0.0.0", true}, {"::1", true},
		{"fe80::1", true}, {"fd00::1", true}, {"::ffff:127.0.0.1", true},
		// The rest of the IANA special-purpose registries that is not globally reachable.
		{"192.0.0.8", true}, {"192.0.0.170", true}, {"192.0.2.1", true}, {"192.88.99.1", true},
		{"198.18.0.1", true}, {"198.19.255.255", true}, {"198.51.100.1", true}, {"203.0.113.1", true},
		{"224.0.0.1", true}, {"239.255.255.250", true}, {"240.0.0.1", true}, {"255.255.255.255", true},
		{"::", true}, {"::7f00:1", true}, {"64:ff9b:1::1", true}, {"100::1", true}, {"100:0:0:1::1", true},
		{"2001::1", true}, {"2001:2::1", true}, {"2001:10::1", true}, {"2001:20::1", true},
		{"2001:db8::1", true}, {"3fff::1", true}, {"5f00::1", true}, {"fec0::1", true}, {"ff02::1", true},
		{"4000::1", true}, {"fe80::1%eth0", true}, {"64:ff9b::7f00:1", true}, {"2002:c0a8:101::1", true},
		{"9.9.9.9", false}, {"2a00:1450::1", false}, {"64:ff9b::101:101", false}, {"2002:101:101::", false},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"2606:4700::1111", false},
	} {
		err := p.Check(netip.MustParseAddr(tc.ip))
		if got := errors.Is(err, ErrBlocked); got != tc.blocked {
			t.Errorf("Check(%s) blocked = %v, want %v (err %v)", tc.ip, got, tc.blocked, err)
		}
	}
}

func TestAllowlist(t *testing.T) {
	allow, err := ParseAllowlist("127.0.0.0/8, 10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Allow: allow}
	if err := p.Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("allowed loopback refused: %v", err)
	}
	if err := p.Check(netip.MustParseAddr("10.0.0.5")); err != nil {
		t.Errorf("allowed address refused: %v", err)
	}
	if err := p.Check(netip.MustParseAddr("10.0.0.6")); err == nil {
		t.Errorf("address outside the allowlist accepted")
	}
	if _, err := ParseAllowlist("nonsense"); err == nil {
		t.Errorf("ParseAllowlist(nonsense) = nil error")
	}
}

func TestDialRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: Policy{}.Dialer(&net.Dialer{}).DialContext}}
	_, err := client.Get(srv.URL)
	if !errors.Is(err, ErrBlocked) {
		t.Fatalf("GET %s error = %v, want ErrBlocked", srv.URL, err)
	}
	allowed := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	client = &http.Client{Transport: &http.Transport{DialContext: allowed.Dialer(&net.Dialer{}).DialContext}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET with loopback allowed: %v", err)
	}
	resp.Body.Close()
}

func TestCheckURL(t *testing.T) {
	p := Policy{}
	ctx := context.Background()
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://example.com/hook", true},
		{"http://example.com:8080/hook?x=1", true},
		{"ftp://example.com/", false},
		{"https://", false},
		{"https://user:pw@example.com/", false},
		{"https://127.0.0.1/", false},
		{"http://localhost:9000/", false},
		{"http://[::1]/", false},
		{"https://8.8.8.8/", true},
		{"not a url", false},
		{"https://example.com/\xff", false},
	} {
		err := p.CheckURL(ctx, tc.url, false)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}
