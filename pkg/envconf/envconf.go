// Package envconf reads service settings from environment variables, collecting
// every problem so a misconfigured service says all that is wrong at once.
package envconf

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pulsehooks/pulsehooks/pkg/ssrf"
)

// Reader reads variables through a lookup function (os.LookupEnv by default).
type Reader struct {
	lookup func(string) (string, bool)
	errs   []error
}

// New returns a Reader over the process environment.
func New() *Reader { return &Reader{lookup: os.LookupEnv} }

// NewFrom returns a Reader over the given lookup function (for tests).
func NewFrom(lookup func(string) (string, bool)) *Reader { return &Reader{lookup: lookup} }

// String returns the first of names that is set and not empty, else def.
func (r *Reader) String(def string, names ...string) string {
	for _, n := range names {
		if v, ok := r.lookup(n); ok && v != "" {
			return v
		}
	}
	return def
}

// Required returns the variable's value, recording an error when it is empty.
func (r *Reader) Required(name string) string {
	v := r.String("", name)
	if v == "" {
		r.errs = append(r.errs, fmt.Errorf("%s is required", name))
	}
	return v
}

// Int returns the variable as an int, def when unset.
func (r *Reader) Int(name string, def int) int {
	v := r.String("", name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q is not a whole number", name, v))
		return def
	}
	return n
}

// Float returns the variable as a float64, def when unset.
func (r *Reader) Float(name string, def float64) float64 {
	v := r.String("", name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q is not a number", name, v))
		return def
	}
	return f
}

// Durations returns the variable as a comma-separated list of durations
// ("0s,5s,5m"), def when unset.
func (r *Reader) Durations(name string, def []time.Duration) []time.Duration {
	v := r.String("", name)
	if v == "" {
		return def
	}
	var out []time.Duration
	for _, f := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			r.errs = append(r.errs, fmt.Errorf("%s: %q is not a duration such as 30s or 5m", name, f))
			return def
		}
		out = append(out, d)
	}
	return out
}

// Duration returns the variable as a time.Duration ("30s", "5m"), def when unset.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v := r.String("", name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q is not a duration such as 30s or 5m", name, v))
		return def
	}
	return d
}

// Key32 returns the variable as 32 bytes of standard base64, recording an
// error when it is missing or malformed.
func (r *Reader) Key32(name string) []byte {
	v := r.Required(name)
	if v == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != 32 {
		r.errs = append(r.errs, fmt.Errorf("%s must be 32 bytes in standard base64 (for example: openssl rand -base64 32)", name))
		return nil
	}
	return b
}

// Networks returns the variable as an ssrf allowlist.
func (r *Reader) Networks(name string) []netip.Prefix {
	p, err := ssrf.ParseAllowlist(r.String("", name))
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %w", name, err))
	}
	return p
}

// Err returns every problem found so far, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(r.errs...))
}
