package retryq

import (
	"testing"
)

// FuzzDecode feeds arbitrary members to Decode: it never panics, and an item
// it decodes encodes to a member that decodes to the same item.
func FuzzDecode(f *testing.F) {
	for _, it := range []Item{
		{Seq: 1, Endpoint: "ep_01JDQ6Z8W1K3ZC3K3E0Q6X4S5N", Attempt: 2, Hops: 3, Flags: 1},
		{Seq: 1<<64 - 1, Endpoint: "custom", Attempt: 1<<32 - 1, Hops: 0, Flags: MaxFlags, ResendID: "rs_01JDQ6Z8W1K3ZC3K3E0Q6X4S5N"},
		{Seq: 0, Endpoint: "e"},
		{Seq: 3, Endpoint: "ep_01JDQ6Z8W1K3ZC3K3E0Q6X4S5N", Attempt: 1, Hops: 1, Link: [8]byte{1}},
		{Seq: 3, Endpoint: "custom", ResendID: "r", Link: [8]byte{1}, LinkTrace: [16]byte{2}},
	} {
		m, err := Encode(it)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m)
	}
	f.Add("")
	f.Add("\x09")
	f.Add("\x01\x01\x30\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01")
	f.Fuzz(func(t *testing.T, member string) {
		it, err := Decode(member)
		if err != nil {
			return
		}
		m2, err := Encode(it)
		if err != nil {
			t.Fatalf("Decode(%q) = %+v, which Encode refuses: %v", member, it, err)
		}
		it2, err := Decode(m2)
		if err != nil || it2 != it {
			t.Fatalf("Decode(%q) = %+v, re-encoded %q decodes to %+v, %v", member, it, m2, it2, err)
		}
	})
}

// FuzzEncode checks decode(encode(x)) == x for every item Encode accepts.
func FuzzEncode(f *testing.F) {
	f.Add(uint64(42), "ep_01JDQ6Z8W1K3ZC3K3E0Q6X4S5N", uint32(1), uint32(2), uint8(3), "")
	f.Add(uint64(0), "ep_01jdq6z8w1k3zc3k3e0q6x4s5n", uint32(0), uint32(0), uint8(0), "rs_1")
	f.Add(uint64(1<<40), "ep_", uint32(7), uint32(1<<31), uint8(15), "x")
	f.Fuzz(func(t *testing.T, seq uint64, endpoint string, attempt, hops uint32, flags uint8, resend string) {
		it := Item{Seq: seq, Endpoint: endpoint, Attempt: attempt, Hops: hops, Flags: flags, ResendID: resend}
		m, err := Encode(it)
		if err != nil {
			return
		}
		got, err := Decode(m)
		if err != nil || got != it {
			t.Fatalf("Decode(Encode(%+v)) = %+v, %v", it, got, err)
		}
	})
}
