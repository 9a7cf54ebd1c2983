package signature

import (
	"errors"
	"strings"
	"time"
)

// ErrNoSecrets is returned when a Signer or Verifier is made without secrets.
var ErrNoSecrets = errors.New("no webhook secrets given")

// Signer signs with one or more secrets. During secret rotation an endpoint
// has several; each request then carries one signature per secret, separated
// by spaces, so receivers that know either secret accept it. A Signer is safe
// for concurrent use.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a Signer for the given secrets ("whsec_…" or bare
// base64), in the order their signatures are written: current secret first.
func NewSigner(secrets ...string) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, ErrNoSecrets
	}
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Signer{keys: keys}, nil
}

// Sign returns the value of the webhook-signature header: the v1 signature
// under each secret, space-separated.
func (s *Signer) Sign(msgID string, ts time.Time, body []byte) string {
	sigs := make([]string, len(s.keys))
	for i, k := range s.keys {
		sigs[i] = Sign(k, msgID, ts, body)
	}
	return strings.Join(sigs, " ")
}
