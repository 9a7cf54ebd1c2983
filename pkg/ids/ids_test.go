package ids

import (
	"sort"
	"testing"
	"time"
)

func TestNewIsSortableAndValid(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	var got []string
	for i := 0; i < 100; i++ {
		id := NewAt(Message, base.Add(time.Duration(i)*time.Millisecond))
		if !Valid(Message, id) {
			t.Fatalf("Valid(%q) = false, want true", id)
		}
		got = append(got, id)
	}
	if !sort.StringsAreSorted(got) {
		t.Errorf("ids made in increasing milliseconds are not sorted: %v", got)
	}
}

func TestUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := New(Endpoint)
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"msg_01HZX3Q6M0V8TB5R3K2J9N4W7C", true},
		{"ep_01HZX3Q6M0V8TB5R3K2J9N4W7C", false},
		{"msg_01HZX3Q6M0V8TB5R3K2J9N4W7", false},
		{"msg_01HZX3Q6M0V8TB5R3K2J9N4W7U", false},
		{"msg_81HZX3Q6M0V8TB5R3K2J9N4W7C", false},
		{"", false},
	} {
		if got := Valid(Message, tc.in); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
