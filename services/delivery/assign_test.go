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
