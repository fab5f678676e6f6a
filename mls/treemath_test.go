package mls

import (
	"math/rand/v2"
	"testing"
)

// commonAncestorSemantic is the RFC's reference definition (Appendix C).
func commonAncestorSemantic(x, y NodeIndex, n uint32) NodeIndex {
	dx := map[NodeIndex]bool{x: true}
	for _, a := range directPath(x, n) {
		dx[a] = true
	}
	best, found := NodeIndex(0), false
	for _, a := range append([]NodeIndex{y}, directPath(y, n)...) {
		if dx[a] && (!found || level(a) < level(best)) {
			best, found = a, true
		}
	}
	return best
}

func TestTreeMathInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []uint32{1, 2, 4, 8, 1024, 1 << 20, 1 << 31} {
		w := nodeWidth(n)
		for range 200 {
			x := NodeIndex(rng.Uint32N(w))
			y := NodeIndex(rng.Uint32N(w))
			if x != root(n) {
				p := parent(x, n)
				if !isAncestor(p, x) || (left(p) != x && right(p) != x) {
					t.Fatalf("n=%d: parent(%d)=%d is not its parent", n, x, p)
				}
				if s := sibling(x, n); parent(s, n) != p || s == x {
					t.Fatalf("n=%d: sibling(%d)=%d", n, x, s)
				}
				if dp, cp := directPath(x, n), copath(x, n); len(dp) != len(cp) || dp[len(dp)-1] != root(n) {
					t.Fatalf("n=%d: path shapes for %d: %v %v", n, x, dp, cp)
				}
			}
			if n <= 1024 {
				if got, want := commonAncestor(x, y), commonAncestorSemantic(x, y, n); got != want {
					t.Fatalf("n=%d: commonAncestor(%d,%d)=%d, want %d", n, x, y, got, want)
				}
			}
		}
	}
}
