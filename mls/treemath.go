package mls

import "grove/mls/internal/treemath"

// Tree math for array-represented, left-balanced binary trees
// (RFC 9420, Appendix C). Leaves sit at even node indices, parents at odd
// ones; a tree of n leaves (a power of two in MLS, Section 7.7) has 2n-1
// nodes. Node indices are uint32, which covers trees of up to 2^31 leaves.

// NodeIndex is a position in the array representation of the tree.
type NodeIndex uint32

// LeafIndex is the position of a leaf among the leaves.
type LeafIndex uint32

// NodeIndex returns the node index of leaf l.
func (l LeafIndex) NodeIndex() NodeIndex { return NodeIndex(2 * uint32(l)) }

// IsLeaf reports whether x is a leaf node.
func (x NodeIndex) IsLeaf() bool { return x&1 == 0 }

// LeafIndex returns the leaf index of a leaf node.
func (x NodeIndex) LeafIndex() LeafIndex { return LeafIndex(x >> 1) }

func log2(x uint32) uint32 { return treemath.Log2(x) }

// level is the height of x above the leaves.
func level(x NodeIndex) uint32 { return treemath.Level(uint32(x)) }

// nodeWidth is the number of nodes in a tree with n leaves.
func nodeWidth(n uint32) uint32 { return treemath.NodeWidth(n) }

// root is the root node of a tree with n leaves.
func root(n uint32) NodeIndex { return NodeIndex(treemath.Root(n)) }

// left returns the left child of the parent node x; x must not be a leaf.
func left(x NodeIndex) NodeIndex { return NodeIndex(treemath.Left(uint32(x))) }

// right returns the right child of the parent node x; x must not be a leaf.
func right(x NodeIndex) NodeIndex { return NodeIndex(treemath.Right(uint32(x))) }

// parent returns the parent of x in a tree of n leaves; x must not be the root.
func parent(x NodeIndex, n uint32) NodeIndex { return NodeIndex(treemath.Parent(uint32(x), n)) }

// sibling returns the other child of x's parent.
func sibling(x NodeIndex, n uint32) NodeIndex { return NodeIndex(treemath.Sibling(uint32(x), n)) }

// directPath lists the ancestors of x from its parent up to the root.
func directPath(x NodeIndex, n uint32) []NodeIndex {
	r := root(n)
	if x == r {
		return nil
	}
	d := make([]NodeIndex, 0, log2(n)+1)
	for x != r {
		x = parent(x, n)
		d = append(d, x)
	}
	return d
}

// copath lists the siblings of x and of its ancestors below the root.
func copath(x NodeIndex, n uint32) []NodeIndex {
	r := root(n)
	if x == r {
		return nil
	}
	c := make([]NodeIndex, 0, log2(n)+1)
	for x != r {
		c = append(c, sibling(x, n))
		x = parent(x, n)
	}
	return c
}

// commonAncestor returns the lowest node that is on both x's and y's direct
// paths (or is x or y itself).
func commonAncestor(x, y NodeIndex) NodeIndex {
	lx, ly := level(x)+1, level(y)+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	xn, yn := uint64(x), uint64(y)
	k := uint32(0)
	for xn != yn {
		xn, yn = xn>>1, yn>>1
		k++
	}
	return NodeIndex(xn<<k + 1<<(k-1) - 1)
}

// isAncestor reports whether a is a proper ancestor of x.
func isAncestor(a, x NodeIndex) bool {
	la := level(a)
	if level(x) >= la {
		return false
	}
	// The subtree under a spans [a - (2^la - 1), a + (2^la - 1)].
	span := uint64(1)<<la - 1
	return uint64(x) >= uint64(a)-span && uint64(x) <= uint64(a)+span
}
