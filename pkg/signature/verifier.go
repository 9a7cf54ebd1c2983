package signature

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far webhook-timestamp may be from the receiver's
// clock, either way, before a webhook is refused as a possible replay.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify and VerifyAt, to be tested with errors.Is.
var (
	// ErrMissingHeaders means webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ErrMissingHeaders = errors.New("missing webhook headers")
	// ErrInvalidTimestamp means webhook-timestamp is not whole unix seconds.
	ErrInvalidTimestamp = errors.New("invalid webhook timestamp")
	// ErrTimestampTooOld means webhook-timestamp is further in the past than
	// the tolerance.
	ErrTimestampTooOld = errors.New("webhook timestamp too old")
	// ErrTimestampTooNew means webhook-timestamp is further in the future than
	// the tolerance.
	ErrTimestampTooNew = errors.New("webhook timestamp too new")
	// ErrNoMatchingSignature means no v1 signature in webhook-signature
	// matches the body under any of the secrets.
	ErrNoMatchingSignature = errors.New("no matching webhook signature")
)

// strictBase64 decodes signatures refusing non-zero padding bits, so only the
// canonical encoding of a MAC matches, as with the reference libraries'
// string comparison. It is never modified.
var strictBase64 = base64.StdEncoding.Strict()

// Verifier checks webhooks received from a Standard Webhooks sender. It holds
// every secret currently valid for the endpoint (several during rotation) and
// is safe for concurrent use.
type Verifier struct {
	keys      [][]byte
	tolerance time.Duration
}

// NewVerifier returns a Verifier accepting signatures under any of the
// secrets ("whsec_…" or bare base64), with the default 5-minute timestamp
// tolerance.
func NewVerifier(secrets ...string) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, ErrNoSecrets
	}
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys, tolerance: DefaultTolerance}, nil
}

// WithTolerance returns a copy of v that accepts timestamps at most d away
// from the receiver's clock, either way. A negative d counts as zero.
func (v *Verifier) WithTolerance(d time.Duration) *Verifier {
	c := *v
	c.tolerance = max(d, 0)
	return &c
}

// Verify checks the webhook headers in h against body at the current time.
// It returns nil when one v1 signature matches, else an error wrapping one of
// ErrMissingHeaders, ErrInvalidTimestamp, ErrTimestampTooOld,
// ErrTimestampTooNew or ErrNoMatchingSignature.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	return v.VerifyAt(h, body, time.Now())
}

// VerifyAt is Verify with the receiver's clock reading now.
func (v *Verifier) VerifyAt(h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("%w: %s, %s and %s are required", ErrMissingHeaders, HeaderID, HeaderTimestamp, HeaderSignature)
	}
	if err := v.checkTimestamp(ts, now); err != nil {
		return err
	}
	macs := make([][]byte, len(v.keys))
	for i, k := range v.keys {
		macs[i] = computeMAC(k, id, ts, body)
	}
	for _, sig := range strings.Fields(sigs) {
		version, encoded, ok := strings.Cut(sig, ",")
		if !ok || version != versionV1 {
			continue // unknown versions (such as v1a) are skipped, not fatal
		}
		got, err := strictBase64.DecodeString(encoded)
		if err != nil {
			continue
		}
		for _, want := range macs {
			if hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return ErrNoMatchingSignature
}

// checkTimestamp parses ts as unix seconds and checks it against now within
// the tolerance, in integer seconds so that no value can overflow.
func (v *Verifier) checkTimestamp(ts string, now time.Time) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrInvalidTimestamp, truncate(ts, 32))
	}
	tol := int64(v.tolerance / time.Second)
	n := now.Unix()
	switch {
	case sec < n-tol:
		return fmt.Errorf("%w: %d is more than %v before %d", ErrTimestampTooOld, sec, v.tolerance, n)
	case sec > n+tol:
		return fmt.Errorf("%w: %d is more than %v after %d", ErrTimestampTooNew, sec, v.tolerance, n)
	}
	return nil
}

// truncate shortens s for error messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
