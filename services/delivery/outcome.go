package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"

	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
	eventv1 "github.com/pulsehooks/pulsehooks/proto/gen/pulsehooks/event/v1"
)

// classify returns the outcome of an attempt that ended with err (nil when a
// response with status arrived). The order matters: an SSRF refusal is a
// dial error, the attempt deadline can surface inside a DNS error, and
// anything not recognised is a connection failure.
func classify(err error, status int) eventv1.Outcome {
	switch {
	case err == nil && status >= 200 && status < 300:
		return eventv1.Outcome_OUTCOME_SUCCESS
	case err == nil:
		return eventv1.Outcome_OUTCOME_HTTP_STATUS
	case errors.Is(err, ssrf.ErrBlocked):
		return eventv1.Outcome_OUTCOME_BLOCKED
	case errors.Is(err, context.DeadlineExceeded):
		return eventv1.Outcome_OUTCOME_TIMEOUT
	case isDNS(err):
		return eventv1.Outcome_OUTCOME_DNS
	case isTimeout(err):
		return eventv1.Outcome_OUTCOME_TIMEOUT
	case isTLS(err):
		return eventv1.Outcome_OUTCOME_TLS
	default:
		return eventv1.Outcome_OUTCOME_CONNECTION
	}
}

func isDNS(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// httpToHTTPS is the text of the plain error net/http returns when an https
// endpoint answers in clear text (it replaces a tls.RecordHeaderError).
const httpToHTTPS = "server gave HTTP response to HTTPS client"

// isTLS recognises TLS failures by type. As a last resort it recognises the
// plain errors crypto/tls returns for some handshake failures (such as an
// unsupported version, or a remote alert) by their "tls: " prefix, and
// net/http's error for an https endpoint that answers in clear text.
func isTLS(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		ech      *tls.ECHRejectionError
	)
	if errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &alert) ||
		errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &ech) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if msg := e.Error(); strings.HasPrefix(msg, "tls: ") || strings.HasSuffix(msg, httpToHTTPS) {
			return true
		}
	}
	return false
}
