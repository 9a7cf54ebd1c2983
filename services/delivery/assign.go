package delivery

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strconv"
)

// assigned returns the partitions of n that member self should hold when
// members are the live workers. Every worker that sees the same members
// computes the same assignment, and each of W members gets ⌊n/W⌋ or
// ⌈n/W⌉ partitions: partition by partition in order, each goes to the
// member that ranks it highest (rendezvous hashing: a weight per member and
// partition) among those with room left. A member joining or leaving then
// moves about n/W partitions, its own share, where partition i → member
// i mod W moved nearly all of them, each move a pause in its partition's
// deliveries. self counts as live even when members lacks it.
func assigned(members []string, n int, self string) map[int]bool {
	live := slices.Clone(members)
	if !slices.Contains(live, self) {
		live = append(live, self)
	}
	slices.Sort(live)
	live = slices.Compact(live)
	w := len(live)
	lo, extra := n/w, n%w // extra members get lo+1
	count := make(map[string]int, w)
	out := map[int]bool{}
	ranked := make([]string, w)
	weights := make(map[string]uint64, w)
	for i := range n {
		for _, m := range live {
			weights[m] = weight(m, i)
		}
		copy(ranked, live)
		slices.SortFunc(ranked, func(a, b string) int {
			if c := cmp.Compare(weights[b], weights[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		for _, m := range ranked {
			c := count[m]
			if c < lo || (c == lo && extra > 0) {
				if c == lo {
					extra--
				}
				count[m]++
				if m == self {
					out[i] = true
				}
				break
			}
		}
	}
	return out
}

// weight is member m's rendezvous weight for partition i: the first 8
// bytes of a SHA-256 of both, the same in every worker.
func weight(m string, i int) uint64 {
	sum := sha256.Sum256([]byte(m + "/" + strconv.Itoa(i)))
	return binary.BigEndian.Uint64(sum[:8])
}
