package delivery

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
)

// newHTTPClient returns the client that sends webhooks. Its dialer applies the
// SSRF policy to every address actually dialled (after DNS resolution), it
// never uses a proxy (a proxy would be dialled instead of the endpoint and
// defeat the policy), it does not follow redirects, and its otelhttp
// transport makes a client span per sampled request and injects W3C
// traceparent (sender injects it for unsampled ones).
// Attempt timeouts come from the request context.
func newHTTPClient(cfg Config, tp trace.TracerProvider) *http.Client {
	policy := ssrf.Policy{Allow: cfg.AllowNetworks}
	dialer := policy.Dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second})
	base := &http.Transport{
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
	return &http.Client{
		Transport: otelhttp.NewTransport(base,
			otelhttp.WithTracerProvider(tp),
			otelhttp.WithPropagators(propagation.TraceContext{}),
			// An unsampled request skips the instrumentation, which would
			// only build a span nobody records (a few per cent of the CPU
			// per delivery); sender injects its traceparent instead.
			otelhttp.WithFilter(func(r *http.Request) bool {
				return trace.SpanContextFromContext(r.Context()).IsSampled()
			}),
		),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
