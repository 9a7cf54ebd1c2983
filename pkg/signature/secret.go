package signature

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SecretPrefix starts every secret pulsehooks hands out.
const SecretPrefix = "whsec_"

// secretBytes is the length of the secrets NewSecret makes; the specification
// recommends 24 to 64 bytes.
const secretBytes = 32

// ErrInvalidSecret is wrapped by ParseSecret's errors.
var ErrInvalidSecret = errors.New("invalid webhook secret")

// NewSecret returns a new random secret: "whsec_" followed by the standard
// base64 of 32 random bytes.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes for a webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ParseSecret decodes a secret, with or without the "whsec_" prefix, into the
// HMAC key. Like the reference libraries of the specification it accepts any
// non-empty standard base64 key (pulsehooks makes 32-byte keys; the
// specification recommends 24 to 64 bytes); it refuses an empty secret and
// one that is not valid base64.
func ParseSecret(s string) ([]byte, error) {
	enc := strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
	if enc == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: not standard base64: %w", ErrInvalidSecret, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: decodes to no bytes", ErrInvalidSecret)
	}
	return key, nil
}

// parseSecrets parses every secret, naming the position of a bad one.
func parseSecrets(secrets []string) ([][]byte, error) {
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
