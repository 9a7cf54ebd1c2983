package delivery

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/relayurl"
	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
)

// newHTTPClient returns the client that sends webhooks. Its dialer applies the
// SSRF policy to every address actually dialled (after DNS resolution), it
// never uses a proxy (a proxy would be dialled instead of the endpoint and
// defeat the policy), and it does not follow redirects. It has no tracing
// instrumentation: sender makes the client span of sampled requests itself
// (otelhttp would record url.full with its query) and injects traceparent.
// Attempt timeouts come from the request context.
//
// When cfg.RelayURL is set, requests to exactly a relay URL under it go
// through a second transport whose dialer skips the policy: the relay route
// of the config service, which an operator configured and which may well
// be internal. The choice is made per request on the parsed URL (scheme,
// host and a one-segment /relay/v1/ path, nothing else), and redirects are
// never followed, so no other URL — on that host or on one named like it —
// reaches the relay transport.
func newHTTPClient(cfg Config) *http.Client {
	policy := ssrf.Policy{Allow: cfg.AllowNetworks}
	var base http.RoundTripper = newTransport(cfg, policy.Dialer(newDialer()))
	if relay, err := relayurl.Parse(cfg.RelayURL); err == nil { // checked by validate
		base = &relayRouter{relay: relay, relayRT: newTransport(cfg, newDialer()), rt: base}
	}
	return &http.Client{
		Transport:     base,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func newDialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
}

func newTransport(cfg Config, dialer *net.Dialer) *http.Transport {
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    cfg.LaneConcurrency,
		IdleConnTimeout:        90 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// relayRouter sends requests to relay URLs with relayRT and every other
// request with rt, the SSRF-checked transport.
type relayRouter struct {
	relay   relayurl.Base
	relayRT http.RoundTripper
	rt      http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (r *relayRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := r.relay.Match(req.URL); ok {
		return r.relayRT.RoundTrip(req)
	}
	return r.rt.RoundTrip(req)
}
