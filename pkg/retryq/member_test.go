package retryq

import (
	"errors"
	"math"
	"sort"
	"testing"

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
	} {
		if _, err := Decode(m); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %v, want ErrMalformed", m, err)
		}
	}
}
