package standalone

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// devSecrets are the secrets of a local development deployment, made on first
// start and kept in the data directory (mode 0600) so restarts reuse them.
type devSecrets struct {
	MasterKey     string `json:"master_key"`
	AdminToken    string `json:"admin_token"`
	OperatorToken string `json:"operator_token"`
	InternalToken string `json:"internal_token"`
}

// demoTenant is the tenant made on first start, with its API key: the key is
// stored hashed by the config service, so this file is the only place the
// development key can be shown again from.
type demoTenant struct {
	TenantID string `json:"tenant_id"`
	APIKey   string `json:"api_key"`
}

func randomToken(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func loadOrCreateSecrets(dir string) (devSecrets, error) {
	path := filepath.Join(dir, "secrets.json")
	var s devSecrets
	found, err := readJSON(path, &s)
	if err != nil || found {
		return s, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return s, fmt.Errorf("make master key: %w", err)
	}
	s.MasterKey = base64.StdEncoding.EncodeToString(key)
	for _, t := range []struct {
		dst    *string
		prefix string
	}{{&s.AdminToken, "pha_"}, {&s.OperatorToken, "pho_"}, {&s.InternalToken, "phi_"}} {
		if *t.dst, err = randomToken(t.prefix, 24); err != nil {
			return s, err
		}
	}
	return s, writeJSON(path, s)
}

// readJSON decodes path into v; found is false when the file does not exist.
func readJSON(path string, v any) (found bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("parse %s: %w", path, err)
	}
	return true, nil
}

// writeJSON writes v to path atomically with mode 0600.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
