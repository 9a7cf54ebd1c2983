package delivery

import "slices"

// assigned returns the partitions of n that member self should hold when
// members are the live workers: partition i goes to the (i mod W)-th member
// in sorted order, so each of W members gets ⌊n/W⌋ or ⌈n/W⌉ partitions and
// every worker that sees the same members computes the same assignment.
// self counts as live even when members lacks it.
func assigned(members []string, n int, self string) map[int]bool {
	live := slices.Clone(members)
	if !slices.Contains(live, self) {
		live = append(live, self)
	}
	slices.Sort(live)
	live = slices.Compact(live)
	k := slices.Index(live, self)
	out := map[int]bool{}
	for i := k; i < n; i += len(live) {
		out[i] = true
	}
	return out
}
