// Package ids makes the identifiers pulsehooks hands out: a short type prefix
// and a time-sortable random part, such as "msg_01HZX3Q6M0V8TB5R3K2J9N4W7C".
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// crockford is Crockford's base32 alphabet, which sorts in byte order.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Prefixes of the identifiers of each kind of object.
const (
	Message  = "msg"
	Endpoint = "ep"
	Tenant   = "ten"
	Attempt  = "atmpt"
	APIKey   = "key"
	// State prefixes state records (decisions about deliveries made
	// without an attempt).
	State = "st"
)

// New returns prefix + "_" + a 26-character ULID: 48 bits of milliseconds since
// the Unix epoch, then 80 random bits. Identifiers made in later milliseconds
// sort after earlier ones.
func New(prefix string) string {
	return NewAt(prefix, time.Now())
}

// NewAt is New for a given time.
func NewAt(prefix string, t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint64(b[0:8], ms<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		// crypto/rand never fails on supported platforms.
		panic(fmt.Errorf("ids: read random bytes: %w", err))
	}
	var sb strings.Builder
	sb.Grow(len(prefix) + 27)
	sb.WriteString(prefix)
	sb.WriteByte('_')
	sb.WriteString(encode(b))
	return sb.String()
}

// encode writes 128 bits as 26 base32 characters (the first carries 3 bits).
func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Valid reports whether s has the given prefix and a well-formed ULID part.
func Valid(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != 26 || rest[0] > '7' {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(crockford, rest[i]) < 0 {
			return false
		}
	}
	return true
}
