package signature

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary headers and bodies to VerifyAt: it must never
// panic, must return nil or one of the documented errors, and must accept
// only what was signed with the secret.
func FuzzVerify(f *testing.F) {
	v := embeddedVector
	f.Add(v.ID, "1614265330", v.Signature, []byte(v.Body))
	f.Add(v.ID, "1614265330", "v1, v1a,xx v2,"+v.Signature, []byte(""))
	f.Add("", "-9223372036854775808", "v1,", []byte(nil))
	f.Add("x", "9223372036854775807", ",,, v1,,", []byte("{}"))
	ver, err := NewVerifier(v.Secret)
	if err != nil {
		f.Fatal(err)
	}
	key, _ := ParseSecret(v.Secret)
	now := time.Unix(v.Timestamp, 0)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		err := ver.VerifyAt(h, body, now)
		if err == nil {
			// Only a genuine signature may pass: recompute it.
			want := Sign(key, h.Get(HeaderID), now, body)
			if h.Get(HeaderTimestamp) == "1614265330" && !containsField(h.Get(HeaderSignature), want) {
				t.Fatalf("VerifyAt accepted %q for id %q body %q without the genuine signature %q", sig, id, body, want)
			}
			return
		}
		for _, known := range []error{ErrMissingHeaders, ErrInvalidTimestamp, ErrTimestampTooOld, ErrTimestampTooNew, ErrNoMatchingSignature} {
			if errors.Is(err, known) {
				return
			}
		}
		t.Fatalf("VerifyAt returned undocumented error %v", err)
	})
}

// containsField reports whether the space-separated list holds s.
func containsField(list, s string) bool {
	return slices.Contains(strings.Fields(list), s)
}
