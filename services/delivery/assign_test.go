package delivery

import (
	"fmt"
	"testing"
)

// TestAssignedIsBalancedDisjointAndAgreed checks that every member of a
// set computes its share from the same members, the shares cover every
// partition once, and each holds ⌊n/W⌋ or ⌈n/W⌉.
func TestAssignedIsBalancedDisjointAndAgreed(t *testing.T) {
	for _, tc := range []struct{ members, n int }{{1, 8}, {2, 1}, {3, 12}, {4, 12}, {5, 12}, {7, 64}, {20, 12}} {
		t.Run(fmt.Sprintf("%d members, %d partitions", tc.members, tc.n), func(t *testing.T) {
			var ms []string
			for i := range tc.members {
				ms = append(ms, fmt.Sprintf("m%02d", tc.members-1-i)) // not in sorted order
			}
			owner := map[int]string{}
			for _, m := range ms {
				got := assigned(ms, tc.n, m)
				if lo, hi := tc.n/tc.members, (tc.n+tc.members-1)/tc.members; len(got) < lo || len(got) > hi {
					t.Errorf("%s gets %d partitions, want %d–%d", m, len(got), lo, hi)
				}
				for p := range got {
					if o, ok := owner[p]; ok {
						t.Errorf("partition %d assigned to %s and %s", p, o, m)
					}
					owner[p] = m
				}
			}
			if len(owner) != tc.n {
				t.Errorf("%d of %d partitions assigned", len(owner), tc.n)
			}
		})
	}
	// A member missing from the list it is given counts itself in.
	if got := assigned([]string{"b"}, 2, "a"); len(got) != 1 || !got[0] {
		t.Errorf("assigned([b], 2, a) = %v, want partition 0 only", got)
	}
}

// TestAssignedMovesOnlyAboutAShare counts the partitions that change hands
// when one of 3 workers leaves and another joins, over 64 partitions: each
// change moves about a share (64/3), not most of them as partition
// i → member i mod W did (44 and 44 here).
func TestAssignedMovesOnlyAboutAShare(t *testing.T) {
	const n = 64
	owners := func(ms []string) map[int]string {
		out := map[int]string{}
		for _, m := range ms {
			for p := range assigned(ms, n, m) {
				out[p] = m
			}
		}
		return out
	}
	moved := func(a, b map[int]string) int {
		k := 0
		for p := range n {
			if a[p] != b[p] {
				k++
			}
		}
		return k
	}
	three := owners([]string{"3f2a9c0d1e4b5a67", "8c1d2e3f4a5b6c7d", "c0ffee0123456789"})
	two := owners([]string{"8c1d2e3f4a5b6c7d", "c0ffee0123456789"})
	again := owners([]string{"8c1d2e3f4a5b6c7d", "c0ffee0123456789", "5e6f708192a3b4c5"})
	// The leaver's own share must move; bounded loads may move a few more.
	const most = n/3 + 4
	if got := moved(three, two); got > most {
		t.Errorf("a worker leaving moved %d of %d partitions, want at most %d", got, n, most)
	}
	if got := moved(two, again); got > most {
		t.Errorf("a worker joining moved %d of %d partitions, want at most %d", got, n, most)
	}
}
