package signature

import (
	"errors"
	"strings"
	"testing"
)

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two NewSecret calls returned the same secret %q", a)
	}
	if !strings.HasPrefix(a, SecretPrefix) {
		t.Errorf("NewSecret = %q, want the %q prefix", a, SecretPrefix)
	}
	key, err := ParseSecret(a)
	if err != nil {
		t.Fatalf("ParseSecret(NewSecret()) = %v", err)
	}
	if len(key) != 32 {
		t.Errorf("NewSecret key length = %d, want 32", len(key))
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		wantLen int
		wantErr bool
	}{
		{"published vector with prefix", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 24, false},
		{"published vector without prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 24, false},
		{"64 bytes", SecretPrefix + strings.Repeat("QUJD", 21) + "QQ==", 64, false},
		{"short but decodable, as the reference libraries accept", "whsec_c2hvcnQ=", 5, false},
		{"surrounding spaces", " whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", 24, false},
		{"empty", "", 0, true},
		{"prefix only", SecretPrefix, 0, true},
		{"not base64", "whsec_not base64!", 0, true},
		{"url-safe alphabet", "whsec_-_-_", 0, true},
		{"missing padding", "whsec_c2hvcnQ", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParseSecret(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidSecret) {
					t.Errorf("ParseSecret(%q) error = %v, want ErrInvalidSecret", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSecret(%q) = %v", tc.in, err)
			}
			if len(key) != tc.wantLen {
				t.Errorf("ParseSecret(%q) length = %d, want %d", tc.in, len(key), tc.wantLen)
			}
		})
	}
}
