package signature

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// headers returns the three Standard Webhooks headers.
func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, sig)
	return h
}

// flipByte returns the signature sig with byte i of its MAC changed.
func flipByte(t *testing.T, sig string, i int) string {
	t.Helper()
	mac, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1,"))
	if err != nil {
		t.Fatalf("decode %q: %v", sig, err)
	}
	if i < 0 {
		i += len(mac)
	}
	mac[i] ^= 0x01
	return "v1," + base64.StdEncoding.EncodeToString(mac)
}

// The strings of cases_every_verifier_handles, each covered by rows of
// TestVerifyCases named after it.
const (
	caseSecretPrefix   = "secret with and without the whsec_ prefix"
	caseRotation       = "several space-separated signatures, one of them valid (secret rotation)"
	caseUnknownVersion = "unknown signature versions next to v1 are skipped, not fatal"
	caseMissing        = "missing webhook-id, webhook-timestamp or webhook-signature: error"
	caseNonNumeric     = "non-numeric timestamp: error"
	caseTimestampRange = "timestamp more than 5 minutes old or in the future: error"
	caseWrongSignature = "valid-looking but wrong signature, and a truncated one ('v1,'): error"
	caseEmptyBody      = "empty body"
	caseConstantTime   = "comparison in constant time"
)

func TestVerifyCases(t *testing.T) {
	v := embeddedVector
	bare := strings.TrimPrefix(v.Secret, SecretPrefix)
	other, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ParseSecret(other)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(v.Timestamp, 0)
	body := []byte(v.Body)
	good := v.Signature
	byOther := Sign(otherKey, v.ID, ts, body)
	key, _ := ParseSecret(v.Secret)
	emptyBodySig := Sign(key, v.ID, ts, nil)

	type row struct {
		name    string
		covers  string
		secrets []string
		header  http.Header
		body    []byte
		now     time.Time
		tol     time.Duration // 0 means the default
		wantErr error
	}
	without := func(name string) http.Header {
		h := headers(v.ID, v.Timestamp, good)
		h.Del(name)
		return h
	}
	withTS := func(s string) http.Header {
		h := headers(v.ID, v.Timestamp, good)
		h.Set(HeaderTimestamp, s)
		return h
	}
	rows := []row{
		{name: "secret with prefix", covers: caseSecretPrefix, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good), body: body, now: ts},
		{name: "secret without prefix", covers: caseSecretPrefix, secrets: []string{bare}, header: headers(v.ID, v.Timestamp, good), body: body, now: ts},
		{name: "valid signature second of two", covers: caseRotation, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, byOther+" "+good), body: body, now: ts},
		{name: "valid signature first of two", covers: caseRotation, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good+" "+byOther), body: body, now: ts},
		{name: "verifier with two secrets, signed by the second", covers: caseRotation, secrets: []string{other, v.Secret}, header: headers(v.ID, v.Timestamp, good), body: body, now: ts},
		{name: "extra spaces between signatures", covers: caseRotation, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, "  "+byOther+"   "+good+" "), body: body, now: ts},
		{name: "v1a and v2 before v1", covers: caseUnknownVersion, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, "v1a,c2lnbmF0dXJl v2,"+strings.TrimPrefix(good, "v1,")+" "+good), body: body, now: ts},
		{name: "only unknown versions", covers: caseUnknownVersion, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, "v2,"+strings.TrimPrefix(good, "v1,")+" nocomma"), body: body, now: ts, wantErr: ErrNoMatchingSignature},
		{name: "missing webhook-id", covers: caseMissing, secrets: []string{v.Secret}, header: without(HeaderID), body: body, now: ts, wantErr: ErrMissingHeaders},
		{name: "missing webhook-timestamp", covers: caseMissing, secrets: []string{v.Secret}, header: without(HeaderTimestamp), body: body, now: ts, wantErr: ErrMissingHeaders},
		{name: "missing webhook-signature", covers: caseMissing, secrets: []string{v.Secret}, header: without(HeaderSignature), body: body, now: ts, wantErr: ErrMissingHeaders},
		{name: "no headers at all", covers: caseMissing, secrets: []string{v.Secret}, header: http.Header{}, body: body, now: ts, wantErr: ErrMissingHeaders},
		{name: "letters as timestamp", covers: caseNonNumeric, secrets: []string{v.Secret}, header: withTS("yesterday"), body: body, now: ts, wantErr: ErrInvalidTimestamp},
		{name: "fractional timestamp", covers: caseNonNumeric, secrets: []string{v.Secret}, header: withTS(strconv.FormatInt(v.Timestamp, 10) + ".5"), body: body, now: ts, wantErr: ErrInvalidTimestamp},
		{name: "timestamp in milliseconds overflows nothing", covers: caseNonNumeric, secrets: []string{v.Secret}, header: withTS("99999999999999999999"), body: body, now: ts, wantErr: ErrInvalidTimestamp},
		{name: "exactly 5 minutes old", covers: caseTimestampRange, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good), body: body, now: ts.Add(5 * time.Minute)},
		{name: "5 minutes and 1 second old", covers: caseTimestampRange, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good), body: body, now: ts.Add(5*time.Minute + time.Second), wantErr: ErrTimestampTooOld},
		{name: "exactly 5 minutes in the future", covers: caseTimestampRange, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good), body: body, now: ts.Add(-5 * time.Minute)},
		{name: "5 minutes and 1 second in the future", covers: caseTimestampRange, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good), body: body, now: ts.Add(-5*time.Minute - time.Second), wantErr: ErrTimestampTooNew},
		{name: "custom tolerance of 1 minute", covers: caseTimestampRange, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good), body: body, now: ts.Add(61 * time.Second), tol: time.Minute, wantErr: ErrTimestampTooOld},
		{name: "wrong but well-formed signature", covers: caseWrongSignature, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, byOther), body: body, now: ts, wantErr: ErrNoMatchingSignature},
		{name: "truncated signature", covers: caseWrongSignature, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, "v1,"), body: body, now: ts, wantErr: ErrNoMatchingSignature},
		{name: "signature cut short", covers: caseWrongSignature, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good[:len(good)-8]), body: body, now: ts, wantErr: ErrNoMatchingSignature},
		{name: "signature not base64", covers: caseWrongSignature, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, "v1,***"), body: body, now: ts, wantErr: ErrNoMatchingSignature},
		{name: "body changed", covers: caseWrongSignature, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good), body: []byte(`{"test": 2432232315}`), now: ts, wantErr: ErrNoMatchingSignature},
		{name: "id changed", covers: caseWrongSignature, secrets: []string{v.Secret}, header: headers(v.ID+"x", v.Timestamp, good), body: body, now: ts, wantErr: ErrNoMatchingSignature},
		{name: "timestamp changed", covers: caseWrongSignature, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp+1, good), body: body, now: ts, wantErr: ErrNoMatchingSignature},
		{name: "empty body signed", covers: caseEmptyBody, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, emptyBodySig), body: nil, now: ts},
		{name: "empty body, signature of another body", covers: caseEmptyBody, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, good), body: []byte{}, now: ts, wantErr: ErrNoMatchingSignature},
		// Timing cannot be asserted reliably in a unit test; Verify compares
		// with hmac.Equal. These rows check that a difference in the first or
		// the last byte is refused alike.
		{name: "first MAC byte differs", covers: caseConstantTime, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, flipByte(t, good, 0)), body: body, now: ts, wantErr: ErrNoMatchingSignature},
		{name: "last MAC byte differs", covers: caseConstantTime, secrets: []string{v.Secret}, header: headers(v.ID, v.Timestamp, flipByte(t, good, -1)), body: body, now: ts, wantErr: ErrNoMatchingSignature},
	}
	covered := map[string]bool{}
	for _, r := range rows {
		covered[r.covers] = true
		t.Run(r.name, func(t *testing.T) {
			ver, err := NewVerifier(r.secrets...)
			if err != nil {
				t.Fatalf("NewVerifier: %v", err)
			}
			if r.tol != 0 {
				ver = ver.WithTolerance(r.tol)
			}
			err = ver.VerifyAt(r.header, r.body, r.now)
			if r.wantErr == nil && err != nil {
				t.Fatalf("VerifyAt = %v, want nil", err)
			}
			if r.wantErr != nil && !errors.Is(err, r.wantErr) {
				t.Fatalf("VerifyAt = %v, want %v", err, r.wantErr)
			}
		})
	}
	for _, c := range requiredCases(t) {
		if !covered[c] {
			t.Errorf("case %q of the shared vectors has no row in this test", c)
		}
	}
}

// requiredCases returns cases_every_verifier_handles from the shared file
// when it is found, else the embedded list.
func requiredCases(t *testing.T) []string {
	t.Helper()
	embedded := []string{caseSecretPrefix, caseRotation, caseUnknownVersion, caseMissing, caseNonNumeric,
		caseTimestampRange, caseWrongSignature, caseEmptyBody, caseConstantTime}
	p := findVectorFile(t)
	if p == "" {
		return embedded
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	var f vectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("parse %s: %v", p, err)
	}
	return f.Cases
}

func TestVerifyUsesTheClock(t *testing.T) {
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	ver, err := NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"job.completed"}`)
	for _, tc := range []struct {
		name    string
		sent    time.Time
		wantErr error
	}{
		{"now", time.Now(), nil},
		{"an hour ago", time.Now().Add(-time.Hour), ErrTimestampTooOld},
		{"in an hour", time.Now().Add(time.Hour), ErrTimestampTooNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := headers("msg_1", tc.sent.Unix(), Sign(key, "msg_1", tc.sent, body))
			if err := ver.Verify(h, body); !errors.Is(err, tc.wantErr) {
				t.Errorf("Verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestNewVerifierRefusesBadSecrets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets []string
		wantErr error
	}{
		{"none", nil, ErrNoSecrets},
		{"empty", []string{""}, ErrInvalidSecret},
		{"second undecodable", []string{embeddedVector.Secret, "whsec_%%%"}, ErrInvalidSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewVerifier(tc.secrets...); !errors.Is(err, tc.wantErr) {
				t.Errorf("NewVerifier(%q) error = %v, want %v", tc.secrets, err, tc.wantErr)
			}
		})
	}
}
