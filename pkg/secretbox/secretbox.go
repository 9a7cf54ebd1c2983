// Package secretbox encrypts small secrets at rest with AES-256-GCM under a
// 32-byte master key. Each sealed value starts with a key-id byte so that the
// master key can be rotated later: a box only opens values sealed under its
// own key id and says so clearly otherwise.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length in bytes of a master key.
const KeySize = 32

// DefaultKeyID is the key id New gives its key.
const DefaultKeyID byte = 1

// nonceSize is the GCM standard nonce length.
const nonceSize = 12

// Overhead is how many bytes Seal adds to a plaintext: the key-id byte, the
// nonce and the authentication tag.
const Overhead = 1 + nonceSize + 16

// ErrUnknownKey is wrapped by Open when a value was sealed under another key id.
var ErrUnknownKey = errors.New("sealed with an unknown key id")

// ErrCorrupt is wrapped by Open when a value is too short, was modified, or was
// sealed under another key or with other associated data.
var ErrCorrupt = errors.New("sealed value is corrupt or does not belong here")

// Box seals and opens values under one master key. It is safe for concurrent use.
type Box struct {
	id   byte
	aead cipher.AEAD
}

// New returns a Box for a 32-byte master key, with key id DefaultKeyID.
func New(key []byte) (*Box, error) {
	return NewWithID(DefaultKeyID, key)
}

// NewWithID returns a Box for a 32-byte master key with an explicit key id,
// for deployments that rotate master keys.
func NewWithID(id byte, key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: master key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: create AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secretbox: create GCM: %w", err)
	}
	return &Box{id: id, aead: aead}, nil
}

// KeyID returns the key id written in front of every value this box seals.
func (b *Box) KeyID() byte { return b.id }

// Seal encrypts plaintext and binds it to associatedData, which must be given
// again to Open. The result is key id, random nonce, then ciphertext and tag.
func (b *Box) Seal(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, Overhead+len(plaintext))
	out[0] = b.id
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("secretbox: read nonce: %w", err)
	}
	return b.aead.Seal(out, out[1:1+nonceSize], plaintext, b.ad(associatedData)), nil
}

// Open decrypts a value made by Seal with the same associated data.
func (b *Box) Open(sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("secretbox: %w: %d bytes is shorter than the %d-byte minimum", ErrCorrupt, len(sealed), Overhead)
	}
	if sealed[0] != b.id {
		return nil, fmt.Errorf("secretbox: %w: value has key id %d, this key is %d", ErrUnknownKey, sealed[0], b.id)
	}
	pt, err := b.aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], b.ad(associatedData))
	if err != nil {
		return nil, fmt.Errorf("secretbox: %w", ErrCorrupt)
	}
	return pt, nil
}

// ad authenticates the key id together with the caller's associated data, so
// the id byte cannot be changed either.
func (b *Box) ad(associatedData []byte) []byte {
	out := make([]byte, 0, 1+len(associatedData))
	out = append(out, b.id)
	return append(out, associatedData...)
}

// ParseKey decodes a master key given as standard or URL-safe base64, with or
// without padding, and checks that it is 32 bytes long.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("secretbox: master key is empty; generate one with `openssl rand -base64 32`")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("secretbox: master key decodes to %d bytes, want %d; generate one with `openssl rand -base64 32`", len(key), KeySize)
		}
		return key, nil
	}
	return nil, errors.New("secretbox: master key is not valid base64; generate one with `openssl rand -base64 32`")
}
