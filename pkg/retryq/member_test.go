package retryq

import (
	"errors"
	"math"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/pulsehooks/pulsehooks/pkg/ids"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, it := range []Item{
		{Seq: 1, Endpoint: ids.New(ids.Endpoint)},
		{Seq: 0, Endpoint: "ep_01HZX3Q6M0V8TB5R3K2J9N4W7C", Attempt: 7, Hops: 300, Flags: MaxFlags},
		{Seq: math.MaxUint64, Endpoint: ids.New(ids.Endpoint), Attempt: math.MaxUint32, Hops: math.MaxUint32},
		{Seq: 123456789, Endpoint: "custom-endpoint.id", Attempt: 2, Hops: 3, Flags: 1},
		{Seq: 42, Endpoint: "ep_not-a-ulid"},
		{Seq: 42, Endpoint: "ep_81HZX3Q6M0V8TB5R3K2J9N4W7C"}, // first char > 7: not canonical
		{Seq: 42, Endpoint: "ep_01hzx3q6m0v8tb5r3k2j9n4w7c"}, // lower case: kept as is
		{Seq: 7, Endpoint: ids.New(ids.Endpoint), Attempt: 1, Hops: 1, ResendID: "rsnd_01HZX3Q6M0V8TB5R3K2J9N4W7C"},
		{Seq: 7, Endpoint: "custom-endpoint.id", Attempt: 2, Hops: 5, Flags: 1, ResendID: "r"},
		{Seq: 8, Endpoint: ids.New(ids.Endpoint), ResendID: string(make([]byte, 256))},
		{Seq: 9, Endpoint: ids.New(ids.Endpoint), Attempt: 1, Hops: 1, Link: testSpan},
		{Seq: 9, Endpoint: "custom", Attempt: 2, Hops: 3, Flags: 1, ResendID: "r", Link: testSpan, LinkTrace: testTrace},
	} {
		m, err := Encode(it)
		if err != nil {
			t.Fatalf("Encode(%+v) = %v", it, err)
		}
		got, err := Decode(m)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)) = %v", it, err)
		}
		if got != it {
			t.Errorf("Decode(Encode(%+v)) = %+v", it, got)
		}
	}
}

func TestMemberSize(t *testing.T) {
	it := Item{Seq: 50_000_000, Endpoint: ids.New(ids.Endpoint), Attempt: 3, Hops: 4}
	m, err := Encode(it)
	if err != nil {
		t.Fatal(err)
	}
	// 1+4 (sequence) + 1 (header) + 1 + 1 (attempt, hops) + 16 (ULID).
	if len(m) != 24 {
		t.Errorf("member of %+v is %d bytes, want 24", it, len(m))
	}
	t.Logf("member size: %d bytes (the endpoint id alone is %d)", len(m), len(it.Endpoint))
}

func TestMembersSortBySequence(t *testing.T) {
	ep := ids.New(ids.Endpoint)
	seqs := []uint64{0, 1, 255, 256, 65535, 65536, 1 << 40, math.MaxUint64}
	var members []string
	for i := len(seqs) - 1; i >= 0; i-- {
		m, err := Encode(Item{Seq: seqs[i], Endpoint: ep, Attempt: uint32(i)})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	sort.Strings(members)
	for i, m := range members {
		it, err := Decode(m)
		if err != nil {
			t.Fatal(err)
		}
		if it.Seq != seqs[i] {
			t.Errorf("member %d in byte order has sequence %d, want %d", i, it.Seq, seqs[i])
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, it := range []Item{
		{Seq: 1},
		{Seq: 1, Endpoint: string(make([]byte, 257))},
		{Seq: 1, Endpoint: "ep_x", Flags: 16},
		{Seq: 1, Endpoint: "ep_x", ResendID: string(make([]byte, 257))},
	} {
		if _, err := Encode(it); err == nil {
			t.Errorf("Encode(%+v) = nil error, want one", it)
		}
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	good, err := Encode(Item{Seq: 9, Endpoint: ids.New(ids.Endpoint)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{
		"",
		"\x09",                                 // sequence length above 8
		"\x02\x01",                             // sequence cut short
		good[:len(good)-1],                     // ULID cut short
		"\x01\x05\x30\x00\x00ep_x",             // unknown format 3
		"\x01\x05\x20\x00\x00",                 // raw format, no endpoint
		"\x01\x05\x20\xff\xff\xff\xff\xff\xff", // attempt varint runs off
		"\x01\x05\xa0\x00\x00\x09rsnd",         // resend id longer than what follows
		"\x01\x05\xa0\x00\x00\x00ep_x",         // empty resend id
		"\x01\x05\x90\x00\x00\x01r",            // resend id, then no ULID
	} {
		if _, err := Decode(m); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %v, want ErrMalformed", m, err)
		}
	}
}

// TestMemberWithoutResendIsUnchanged: items without a resend id encode as
// they did before resend ids existed, byte for byte, so members already in
// Redis keep their meaning and workers of either version read them.
func TestMemberWithoutResendIsUnchanged(t *testing.T) {
	for _, tc := range []struct {
		it   Item
		want string
	}{
		{Item{Seq: 5, Endpoint: "custom", Attempt: 1, Hops: 2}, "\x01\x05\x20\x01\x02custom"},
		{Item{Seq: 0x0102, Endpoint: "x", Attempt: 300, Hops: 0, Flags: 1}, "\x02\x01\x02\x21\xac\x02\x00x"},
		{Item{Seq: 0, Endpoint: "ep_00000000000000000000000001", Attempt: 3, Hops: 4}, "\x00\x10\x03\x04" + strings.Repeat("\x00", 15) + "\x01"},
	} {
		got, err := Encode(tc.it)
		if err != nil {
			t.Fatalf("Encode(%+v) = %v", tc.it, err)
		}
		if got != tc.want {
			t.Errorf("Encode(%+v) = %q, want %q", tc.it, got, tc.want)
		}
	}
}

var (
	testSpan  = trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	testTrace = trace.TraceID{0xa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
)

// TestMemberLink: a link adds the link bit and 9 bytes (a span of the
// event's trace) or 25 (of another trace) after the hops and resend id, and
// an item without a link is the member it always was.
func TestMemberLink(t *testing.T) {
	plain := Item{Seq: 5, Endpoint: "custom", Attempt: 1, Hops: 2}
	for _, tc := range []struct {
		it   Item
		want string
	}{
		{plain, "\x01\x05\x20\x01\x02custom"},
		{Item{Seq: 5, Endpoint: "custom", Attempt: 1, Hops: 2, Link: testSpan}, "\x01\x05\x60\x01\x02\x08" + string(testSpan[:]) + "custom"},
		{Item{Seq: 5, Endpoint: "custom", Attempt: 1, Hops: 2, Link: testSpan, LinkTrace: testTrace},
			"\x01\x05\x60\x01\x02\x18" + string(testTrace[:]) + string(testSpan[:]) + "custom"},
		{Item{Seq: 5, Endpoint: "custom", Attempt: 1, Hops: 2, ResendID: "r", Link: testSpan},
			"\x01\x05\xe0\x01\x02\x01r\x08" + string(testSpan[:]) + "custom"},
	} {
		got, err := Encode(tc.it)
		if err != nil {
			t.Fatalf("Encode(%+v) = %v", tc.it, err)
		}
		if got != tc.want {
			t.Errorf("Encode(%+v) = %q, want %q", tc.it, got, tc.want)
		}
	}
	ulid := Item{Seq: 50_000_000, Endpoint: ids.New(ids.Endpoint), Attempt: 3, Hops: 4}
	m0, _ := Encode(ulid)
	ulid.Link = testSpan
	m1, _ := Encode(ulid)
	if len(m1)-len(m0) != 9 {
		t.Errorf("a link adds %d bytes to a %d-byte member, want 9", len(m1)-len(m0), len(m0))
	}
	if _, err := Encode(Item{Seq: 1, Endpoint: "x", LinkTrace: testTrace}); err == nil {
		t.Error("Encode accepted a link trace without a span")
	}
	for _, bad := range []string{
		"\x01\x05\x60\x01\x02",                                          // no link length
		"\x01\x05\x60\x01\x02\x07" + string(testSpan[:7]),               // length 7
		"\x01\x05\x60\x01\x02\x08\x01\x02",                              // short
		"\x01\x05\x60\x01\x02\x08" + string(make([]byte, 8)) + "custom", // zero span id
	} {
		if it, err := Decode(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %+v, %v; want ErrMalformed", bad, it, err)
		}
	}
}

// TestResendMembersAreDistinct: a resend's item and the original's with the
// same sequence, endpoint, attempt and hops are different members, and so
// are two resends', so the sorted set keeps every one of them.
func TestResendMembersAreDistinct(t *testing.T) {
	ep := ids.New(ids.Endpoint)
	seen := map[string]Item{}
	for _, resend := range []string{"", "rsnd_01HZX3Q6M0V8TB5R3K2J9N4W7C", "rsnd_01HZX3Q6M0V8TB5R3K2J9N4W7D", "rcvr_01HZX3Q6M0V8TB5R3K2J9N4W7C"} {
		it := Item{Seq: 99, Endpoint: ep, Attempt: 1, Hops: 1, ResendID: resend}
		m, err := Encode(it)
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := seen[m]; ok {
			t.Errorf("%+v and %+v encode to the same member %q", prev, it, m)
		}
		seen[m] = it
	}
}
