package envconf

import (
	"strings"
	"testing"
	"time"
)

func TestReader(t *testing.T) {
	env := map[string]string{
		"A": "x", "N": "7", "BADN": "seven", "D": "5s", "BADD": "5 parsecs",
		"K": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "NET": "127.0.0.0/8", "F": "0.25", "DS": "0s, 5s,5m",
	}
	r := NewFrom(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if got := r.String("def", "MISSING", "A"); got != "x" {
		t.Errorf("String = %q, want x", got)
	}
	if got := r.Int("N", 1); got != 7 {
		t.Errorf("Int = %d, want 7", got)
	}
	if got := r.Duration("D", 0); got != 5*time.Second {
		t.Errorf("Duration = %v, want 5s", got)
	}
	if got := r.Key32("K"); len(got) != 32 {
		t.Errorf("Key32 len = %d, want 32", len(got))
	}
	if got := r.Networks("NET"); len(got) != 1 {
		t.Errorf("Networks = %v, want one prefix", got)
	}
	if got := r.Float("F", 0); got != 0.25 {
		t.Errorf("Float = %v, want 0.25", got)
	}
	if got := r.Durations("DS", nil); len(got) != 3 || got[2] != 5*time.Minute {
		t.Errorf("Durations = %v, want [0s 5s 5m0s]", got)
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err = %v, want nil", err)
	}
	r.Int("BADN", 1)
	r.Duration("BADD", 0)
	r.Required("MISSING")
	err := r.Err()
	if err == nil {
		t.Fatal("Err = nil after three bad variables")
	}
	for _, want := range []string{"BADN", "BADD", "MISSING is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err = %q, want it to mention %q", err, want)
		}
	}
}
