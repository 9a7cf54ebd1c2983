package signature

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"
)

// FuzzParseSecret checks ParseSecret on arbitrary input: it never panics,
// every error wraps ErrInvalidSecret, an accepted secret is a non-empty key
// that re-encodes (with and without the prefix) to the same key, and the
// standard encoding of any non-empty key parses back to it.
func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{
		embeddedVector.Secret, "whsec_", "", " whsec_AAAA ", "whsec_====", "AAAA", "whsec_whsec_AAAA",
		"whsec_AA==", "whsec_AB==", "whsec_-_-_", "whsec_\x00", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := ParseSecret(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSecret) {
				t.Fatalf("ParseSecret(%q) error %v does not wrap ErrInvalidSecret", s, err)
			}
		} else {
			if len(key) == 0 {
				t.Fatalf("ParseSecret(%q) accepted an empty key", s)
			}
			enc := base64.StdEncoding.EncodeToString(key)
			for _, again := range []string{SecretPrefix + enc, enc} {
				k2, err := ParseSecret(again)
				if err != nil || !bytes.Equal(k2, key) {
					t.Fatalf("ParseSecret(%q) = %x, but its re-encoding %q gives %x, %v", s, key, again, k2, err)
				}
			}
		}
		if raw := []byte(s); len(raw) > 0 {
			k, err := ParseSecret(SecretPrefix + base64.StdEncoding.EncodeToString(raw))
			if err != nil || !bytes.Equal(k, raw) {
				t.Fatalf("the encoding of key %x parses to %x, %v", raw, k, err)
			}
		}
	})
}
