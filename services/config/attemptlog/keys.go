package attemptlog

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// Key layout. Every data key starts with the data prefix and the number of
// its time bucket (bucket = Unix time / bucket width, big-endian), so that
// retention is one DeleteRange over the buckets that are too old, and then a
// table (one byte) and the table's scope (NUL-terminated strings: tenant
// first, so a query can never reach another tenant's keys):
//
//	M tenant msg                               → message record (primary)
//	m tenant sort                              → message record (tenant's messages, newest first)
//	y tenant type sort                         → message record (by event type)
//	A tenant attempt                           → the attempt's sequence in ATTEMPTS
//	a tenant endpoint sort                     → attempt summary (endpoint's attempts)
//	o tenant endpoint outcome(1 byte) sort     → attempt summary (by outcome)
//	g tenant msg sort                          → attempt summary (message's attempts)
//	D tenant msg endpoint                      → delivery status (latest attempt of msg to endpoint)
//	E tenant endpoint sort(message)            → delivery status (endpoint's messages)
//	F tenant endpoint sort                     → msg id (attempts that left a delivery failed or dropped)
//	S tenant endpoint hour(4 bytes)            → success and failure counts of an hour
//	W tenant endpoint state(1 byte) sort(msg)  → delivery status (endpoint's deliveries by state)
//	V tenant state(1 byte) sort(msg.endpoint)  → delivery status (tenant's deliveries by state)
//	j tenant job id sort(msg)                  → message record (by the job id in its data)
//
// sort is the item's time inverted (8 bytes, ^ns, so ascending keys are
// newest first), its id, and a NUL. Messages sort by the time in their id (the
// time ingest accepted them), attempts by when they started. Message-keyed
// tables (M, D, E, W, V, j) live in the bucket of the message's time, attempt-keyed
// ones (A, a, o, g, F) in the bucket of the attempt's start, S in the bucket
// of the hour's start.
//
// Meta keys live under the meta prefix and are never swept: the stream
// positions the indexer has stored, the creation time of the streams they
// are positions in, and the layout (format version and bucket width).
const (
	prefixData byte = 0x01
	prefixMeta byte = 0x02

	tableMessage         byte = 'M'
	tableTenantMessages  byte = 'm'
	tableTypeMessages    byte = 'y'
	tableAttempt         byte = 'A'
	tableEndpointAttempt byte = 'a'
	tableOutcomeAttempt  byte = 'o'
	tableMessageAttempt  byte = 'g'
	tableDelivery        byte = 'D'
	tableEndpointMessage byte = 'E'
	tableFailed          byte = 'F'
	tableStats           byte = 'S'
	tableEndpointState   byte = 'W'
	tableTenantState     byte = 'V'
	tableJobMessages     byte = 'j'
)

// Meta keys.
var (
	keyEventsPosition   = []byte{prefixMeta, 'p', 'e'}
	keyAttemptsPosition = []byte{prefixMeta, 'p', 'a'}
	keyEventsCreated    = []byte{prefixMeta, 'c', 'e'}
	keyAttemptsCreated  = []byte{prefixMeta, 'c', 'a'}
	keyStatesPosition   = []byte{prefixMeta, 'p', 's'}
	keyStatesCreated    = []byte{prefixMeta, 'c', 's'}
	keyLayout           = []byte{prefixMeta, 'l'}
)

// timeLen is the length of the time at the start of a sort key.
const timeLen = 8

// errBadCursor is wrapped by errors for iterators that do not decode.
var errBadCursor = errors.New("invalid iterator")

// bucketPrefix is the start of every key of bucket b.
func bucketPrefix(b uint32) []byte {
	k := make([]byte, 5, 96)
	k[0] = prefixData
	binary.BigEndian.PutUint32(k[1:], b)
	return k
}

// scopeKey is bucket b's prefix of a table and scope.
func scopeKey(b uint32, table byte, scope ...string) []byte {
	k := append(bucketPrefix(b), table)
	for _, s := range scope {
		k = append(k, s...)
		k = append(k, 0)
	}
	return k
}

// nanos is t as Unix nanoseconds, clamped to the uint64 range.
func nanos(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	ns := t.UnixNano()
	if ns < 0 {
		return 0
	}
	return uint64(ns)
}

// sortKey is the inverted time, the id and a NUL.
func sortKey(t time.Time, id string) []byte {
	k := make([]byte, timeLen, timeLen+len(id)+1)
	binary.BigEndian.PutUint64(k, ^nanos(t))
	k = append(k, id...)
	return append(k, 0)
}

// earlierKey is the first sort key of the items strictly earlier than t
// (items at t and later sort before it), and nil when t is the epoch or
// before, where nothing is earlier.
func earlierKey(t time.Time) []byte {
	n := nanos(t)
	if n == 0 {
		return nil
	}
	k := make([]byte, timeLen)
	binary.BigEndian.PutUint64(k, ^n+1)
	return k
}

// parseSortKey splits a sort key into its time and id.
func parseSortKey(k []byte) (time.Time, string, bool) {
	if len(k) < timeLen+2 || k[len(k)-1] != 0 {
		return time.Time{}, "", false
	}
	ns := ^binary.BigEndian.Uint64(k[:timeLen])
	id := string(k[timeLen : len(k)-1])
	if strings.IndexByte(id, 0) >= 0 {
		return time.Time{}, "", false
	}
	return time.Unix(0, int64(ns)).UTC(), id, true
}

// Cursor directions: the first byte of a cursor says whether it continues to
// older items (the next page) or to newer ones (the previous page). Cursors
// without it (older versions) continue to older items: a sort key starts
// with an inverted time, never one of these bytes.
const (
	cursorOlder byte = 'n'
	cursorNewer byte = 'p'
)

// encodeCursor is the opaque iterator of the items past sort key k in
// direction dir.
func encodeCursor(dir byte, k []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{dir}, k...))
}

// decodeCursor returns the direction and sort key of an iterator.
func decodeCursor(c string) (byte, []byte, time.Time, error) {
	k, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(k) == 0 {
		return 0, nil, time.Time{}, errBadCursor
	}
	dir := cursorOlder
	if k[0] == cursorOlder || k[0] == cursorNewer {
		dir, k = k[0], k[1:]
	}
	t, _, ok := parseSortKey(k)
	if !ok {
		return 0, nil, time.Time{}, errBadCursor
	}
	return dir, k, t, nil
}

// prefixEnd is the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xFF: no upper bound
}

// crockford is Crockford's base32 alphabet, as pkg/ids encodes ULIDs.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// idTime is the time encoded in an id made by pkg/ids ("<prefix>_<ULID>"):
// its first 48 bits are milliseconds since the Unix epoch.
func idTime(id string) (time.Time, bool) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 || len(id)-i-1 != 26 {
		return time.Time{}, false
	}
	ulid := id[i+1:]
	var v uint64
	for j := 0; j < 10; j++ { // 10 characters = 50 bits, the first 2 are 0
		c := strings.IndexByte(crockford, ulid[j])
		if c < 0 {
			return time.Time{}, false
		}
		v = v<<5 | uint64(c)
	}
	if v>>48 != 0 {
		return time.Time{}, false
	}
	for j := 10; j < 26; j++ {
		if strings.IndexByte(crockford, ulid[j]) < 0 {
			return time.Time{}, false
		}
	}
	return time.UnixMilli(int64(v)).UTC(), true
}

// CursorItem returns the id of the item a cursor continues from (for the
// tenant's deliveries by state, "<message>.<endpoint>"); "" when the cursor
// does not decode.
func CursorItem(c string) string {
	_, k, _, err := decodeCursor(c)
	if err != nil {
		return ""
	}
	_, id, _ := parseSortKey(k)
	return id
}
