package signature

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// vector is one published Standard Webhooks test vector.
type vector struct {
	Secret    string `json:"secret"`
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Body      string `json:"body"`
	Signature string `json:"signature"`
}

// vectorFile is the layout of shared/vectors/standard-webhooks.json.
type vectorFile struct {
	Vectors []vector `json:"vectors"`
	Cases   []string `json:"cases_every_verifier_handles"`
}

// embeddedVector is a copy of the published vector, so the test never skips
// when the shared vectors directory is not beside the repository.
var embeddedVector = vector{
	Secret:    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	ID:        "msg_p5jXN8AQM9LWM0D4loKWxJek",
	Timestamp: 1614265330,
	Body:      `{"test": 2432232314}`,
	Signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}

// vectorPath is where the shared vectors live relative to a directory that
// holds both the repository and shared/.
var vectorPath = filepath.Join("shared", "vectors", "standard-webhooks.json")

// findVectorFile walks up from the working directory looking for
// shared/vectors/standard-webhooks.json; it returns "" when there is none.
func findVectorFile(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		p := filepath.Join(dir, vectorPath)
		if _, err := os.Stat(p); err == nil {
			return p
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stat %s: %v", p, err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// loadVectors returns the embedded vector plus, when the shared file is
// found, every vector it holds.
func loadVectors(t *testing.T) []vector {
	t.Helper()
	vs := []vector{embeddedVector}
	p := findVectorFile(t)
	if p == "" {
		t.Logf("%s not found above the working directory; using the embedded copy only", vectorPath)
		return vs
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	var f vectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("parse %s: %v", p, err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("%s holds no vectors", p)
	}
	if f.Vectors[0] != embeddedVector {
		t.Errorf("first vector of %s = %+v, want the embedded copy %+v", p, f.Vectors[0], embeddedVector)
	}
	return append(vs, f.Vectors...)
}

func TestPublishedVectors(t *testing.T) {
	for i, v := range loadVectors(t) {
		key, err := ParseSecret(v.Secret)
		if err != nil {
			t.Fatalf("vector %d: ParseSecret(%q): %v", i, v.Secret, err)
		}
		ts := time.Unix(v.Timestamp, 0)
		if got := Sign(key, v.ID, ts, []byte(v.Body)); got != v.Signature {
			t.Errorf("vector %d: Sign = %q, want %q", i, got, v.Signature)
		}
		ver, err := NewVerifier(v.Secret)
		if err != nil {
			t.Fatalf("vector %d: NewVerifier: %v", i, err)
		}
		h := headers(v.ID, v.Timestamp, v.Signature)
		if err := ver.VerifyAt(h, []byte(v.Body), ts); err != nil {
			t.Errorf("vector %d: VerifyAt = %v, want nil", i, err)
		}
	}
}
