package secretbox

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func testKey(fill byte) []byte { return bytes.Repeat([]byte{fill}, KeySize) }

func mustNew(t *testing.T, key []byte) *Box {
	t.Helper()
	b, err := New(key)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	b := mustNew(t, testKey(7))
	for _, pt := range [][]byte{nil, []byte("x"), []byte("whsec_" + strings.Repeat("A", 200))} {
		sealed, err := b.Seal(pt, []byte("ep_1"))
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		if got, want := len(sealed), len(pt)+Overhead; got != want {
			t.Errorf("sealed length = %d, want %d", got, want)
		}
		if got := sealed[0]; got != DefaultKeyID {
			t.Errorf("key id byte = %d, want %d", got, DefaultKeyID)
		}
		if len(pt) >= 8 && bytes.Contains(sealed, pt) { // shorter ones may occur by chance
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := b.Open(sealed, []byte("ep_1"))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, want %q", got, pt)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	b := mustNew(t, testKey(1))
	a1, err := b.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.Seal([]byte("same"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a1, a2) {
		t.Errorf("two seals of the same plaintext are identical: %x", a1)
	}
}

func TestOpenRefuses(t *testing.T) {
	b := mustNew(t, testKey(7))
	sealed, err := b.Seal([]byte("secret"), []byte("ep_1"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	otherID := bytes.Clone(sealed)
	otherID[0] = 9
	other, err := New(testKey(8))
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := NewWithID(2, testKey(7))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		box     *Box
		sealed  []byte
		ad      string
		wantErr error
	}{
		{"other associated data", b, sealed, "ep_2", ErrCorrupt},
		{"modified ciphertext", b, flipped, "ep_1", ErrCorrupt},
		{"truncated", b, sealed[:Overhead-1], "ep_1", ErrCorrupt},
		{"empty", b, nil, "ep_1", ErrCorrupt},
		{"other key", other, sealed, "ep_1", ErrCorrupt},
		{"unknown key id", b, otherID, "ep_1", ErrUnknownKey},
		{"box with another key id", rotated, sealed, "ep_1", ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.box.Open(tt.sealed, []byte(tt.ad))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("Open returned %q with an error", got)
			}
		})
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New(%d-byte key) succeeded, want an error", n)
		}
	}
}

func TestParseKey(t *testing.T) {
	key := testKey(0xfb)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"standard", base64.StdEncoding.EncodeToString(key), ""},
		{"raw standard", base64.RawStdEncoding.EncodeToString(key), ""},
		{"url", base64.URLEncoding.EncodeToString(key), ""},
		{"raw url with spaces", " " + base64.RawURLEncoding.EncodeToString(key) + "\n", ""},
		{"empty", "", "empty"},
		{"short", base64.StdEncoding.EncodeToString(key[:16]), "16 bytes"},
		{"not base64", "not base64 at all!", "not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKey error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if !bytes.Equal(got, key) {
				t.Errorf("ParseKey = %x, want %x", got, key)
			}
		})
	}
}
