// Package webhookheaders holds the rules for the custom headers a tenant may
// add to an endpoint's requests: which names pulsehooks reserves (config
// refuses them, delivery never sends them) and which names carry credentials
// (their values are sealed at rest, never shown back, and redacted in
// attempt records).
package webhookheaders

import "strings"

// Why says why a custom header name is reserved, or "" if a tenant may set
// it. Names are compared case-insensitively.
func Why(name string) string {
	n := strings.ToLower(name)
	switch {
	case strings.HasPrefix(n, "webhook-"):
		return "is set by pulsehooks to identify and sign each request"
	case strings.HasPrefix(n, "content-"):
		return "describes the body, which pulsehooks sends as JSON"
	case n == "host":
		return "is taken from the endpoint URL"
	case n == "user-agent":
		return "is set by pulsehooks"
	case n == "traceparent" || n == "tracestate":
		return "is set by pulsehooks for tracing"
	case n == "expect":
		return "would change how the request is sent"
	case n == "connection" || n == "keep-alive" || n == "te" || n == "trailer" ||
		n == "transfer-encoding" || n == "upgrade" || n == "http2-settings" || strings.HasPrefix(n, "proxy-"):
		return "is a hop-by-hop or connection header, managed by the HTTP client"
	}
	return ""
}

// Reserved reports whether a custom header name is reserved by pulsehooks.
func Reserved(name string) bool { return Why(name) != "" }

// Credential reports whether a header name carries a credential:
// Authorization, Cookie and Set-Cookie, or any name containing "token",
// "secret", "key" or "auth" (case-insensitive). Custom headers with such
// names are always secret.
func Credential(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "cookie", "set-cookie":
		return true
	}
	for _, part := range []string{"token", "secret", "key", "auth"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}
