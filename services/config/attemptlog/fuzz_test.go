package attemptlog

import (
	"bytes"
	"testing"
	"time"
)

// FuzzCursor feeds arbitrary cursors to decodeCursor: it never panics, a
// cursor it accepts is a well-formed sort key whose own encoding decodes to
// the same key and time, and the cursor of any sort key decodes to it.
func FuzzCursor(f *testing.F) {
	f.Add(encodeCursor(cursorOlder, sortKey(time.Date(2026, 12, 7, 10, 0, 0, 123, time.UTC), "att_01JDQ6Z8W1K3ZC3K3E0Q6X4S5N")), int64(0), "x")
	f.Add("", int64(1), "a")
	f.Add("AAAAAAAAAAAA", int64(-1), "")
	f.Add("____________AA", int64(1<<62), "id\x00")
	f.Add("!!", int64(1733565600000000000), "att_1")
	f.Fuzz(func(t *testing.T, c string, ns int64, id string) {
		if dir, k, ts, err := decodeCursor(c); err == nil {
			pt, pid, ok := parseSortKey(k)
			if !ok || !pt.Equal(ts) {
				t.Fatalf("decodeCursor(%q) = %x, %v, whose sort key parses to %v, %q, %v", c, k, ts, pt, pid, ok)
			}
			dir2, k2, ts2, err := decodeCursor(encodeCursor(dir, k))
			if err != nil || dir2 != dir || !bytes.Equal(k2, k) || !ts2.Equal(ts) {
				t.Fatalf("cursor %q re-encoded decodes to %x, %v, %v, want %x, %v", c, k2, ts2, err, k, ts)
			}
		}
		if ns <= 0 || id == "" || bytes.IndexByte([]byte(id), 0) >= 0 {
			return
		}
		at := time.Unix(0, ns).UTC()
		k := sortKey(at, id)
		dir, got, gotTime, err := decodeCursor(encodeCursor(cursorNewer, k))
		if err != nil || dir != cursorNewer || !bytes.Equal(got, k) || !gotTime.Equal(at) {
			t.Fatalf("cursor of (%v, %q) decodes to %x, %v, %v, want %x", at, id, got, gotTime, err, k)
		}
	})
}
