package signature

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignerRotation(t *testing.T) {
	current, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	previous := embeddedVector.Secret
	s, err := NewSigner(current, previous)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"job.created"}`)
	header := s.Sign("msg_1", ts, body)
	parts := strings.Split(header, " ")
	if len(parts) != 2 {
		t.Fatalf("Sign = %q: %d signatures, want 2", header, len(parts))
	}
	key, _ := ParseSecret(current)
	if got, want := parts[0], Sign(key, "msg_1", ts, body); got != want {
		t.Errorf("first signature = %q, want the current secret's %q", got, want)
	}
	for _, secret := range []string{current, previous} {
		v, err := NewVerifier(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyAt(headers("msg_1", ts.Unix(), header), body, ts); err != nil {
			t.Errorf("a receiver knowing only %q: VerifyAt = %v, want nil", secret, err)
		}
	}
}

func TestNewSignerRefusesBadSecrets(t *testing.T) {
	if _, err := NewSigner(); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("NewSigner() error = %v, want ErrNoSecrets", err)
	}
	if _, err := NewSigner("whsec_***"); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("NewSigner(bad) error = %v, want ErrInvalidSecret", err)
	}
}
