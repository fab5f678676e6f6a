// Package treemath is the arithmetic of array-represented, left-balanced
// binary trees (RFC 9420, Appendix C) on plain uint32 node indices. Package
// mls builds its tree on it; it is internal so that the official tree-math
// vectors (grove/mls/mlsvectors) check the very functions mls uses without
// mls exporting tree arithmetic that no protocol user needs.
package treemath

import "math/bits"

// Log2 is floor(log2(x)), and 0 for x == 0.
func Log2(x uint32) uint32 {
	if x == 0 {
		return 0
	}
	return uint32(bits.Len32(x) - 1)
}

// Level is the height of node x above the leaves.
func Level(x uint32) uint32 { return uint32(bits.TrailingZeros32(^x)) }

// NodeWidth is the number of nodes in a tree with n leaves.
func NodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// Root is the root node of a tree with n leaves.
func Root(n uint32) uint32 { return 1<<Log2(NodeWidth(n)) - 1 }

// Left returns the left child of the parent node x; x must not be a leaf.
func Left(x uint32) uint32 {
	k := Level(x)
	if k == 0 {
		panic("mls: left child of a leaf")
	}
	return x ^ (1 << (k - 1))
}

// Right returns the right child of the parent node x; x must not be a leaf.
func Right(x uint32) uint32 {
	k := Level(x)
	if k == 0 {
		panic("mls: right child of a leaf")
	}
	return x ^ (3 << (k - 1))
}

// Parent returns the parent of x in a tree of n leaves; x must not be the
// root.
func Parent(x, n uint32) uint32 {
	if x == Root(n) {
		panic("mls: parent of the root")
	}
	k := Level(x)
	b := (uint64(x) >> (k + 1)) & 1
	return uint32((uint64(x) | 1<<k) ^ (b << (k + 1)))
}

// Sibling returns the other child of x's parent.
func Sibling(x, n uint32) uint32 {
	p := Parent(x, n)
	if x < p {
		return Right(p)
	}
	return Left(p)
}
