package mls

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// ParentNode is an interior node of the ratchet tree (RFC 9420, Section 7.1).
// UnmergedLeaves is sorted in increasing order.
type ParentNode struct {
	EncryptionKey  []byte // HPKEPublicKey
	ParentHash     []byte
	UnmergedLeaves []LeafIndex
}

func (p *ParentNode) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, p.EncryptionKey)
	addVarBytes(b, p.ParentHash)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, l := range p.UnmergedLeaves {
			b.AddUint32(uint32(l))
		}
	})
}

func (p *ParentNode) unmarshal(s *cryptobyte.String) bool {
	*p = ParentNode{}
	return readVarBytes(s, &p.EncryptionKey) &&
		readVarBytes(s, &p.ParentHash) &&
		readVectorElems(s, func(s *cryptobyte.String) bool {
			var l uint32
			if !s.ReadUint32(&l) {
				return false
			}
			p.UnmergedLeaves = append(p.UnmergedLeaves, LeafIndex(l))
			return true
		})
}

// Clone returns a deep copy.
func (p *ParentNode) Clone() *ParentNode {
	return &ParentNode{
		EncryptionKey:  clone(p.EncryptionKey),
		ParentHash:     clone(p.ParentHash),
		UnmergedLeaves: cloneSlice(p.UnmergedLeaves),
	}
}

// NodeType tells leaves from parents in Node and TreeHashInput (RFC 9420,
// Section 7.8).
type NodeType uint8

// Node types, RFC 9420, Section 7.8.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// Node is a non-blank node of the ratchet tree as carried in the
// ratchet_tree extension (RFC 9420, Section 12.4.3.3): exactly one of Leaf
// and Parent is set.
type Node struct {
	Leaf   *LeafNode
	Parent *ParentNode
}

// Type returns the node's NodeType.
func (n *Node) Type() NodeType {
	if n.Leaf != nil {
		return NodeTypeLeaf
	}
	return NodeTypeParent
}

func (n *Node) marshal(b *cryptobyte.Builder) {
	switch {
	case n.Leaf != nil && n.Parent == nil:
		b.AddUint8(uint8(NodeTypeLeaf))
		n.Leaf.marshal(b)
	case n.Parent != nil && n.Leaf == nil:
		b.AddUint8(uint8(NodeTypeParent))
		n.Parent.marshal(b)
	default:
		b.SetError(fmt.Errorf("mls: node must be exactly one of leaf and parent: %w", ErrDecode))
	}
}

func (n *Node) unmarshal(s *cryptobyte.String) bool {
	*n = Node{}
	var t uint8
	if !s.ReadUint8(&t) {
		return false
	}
	switch NodeType(t) {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		return n.Leaf.unmarshal(s)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		return n.Parent.unmarshal(s)
	}
	return false
}

// RatchetTree is the public state of a group's ratchet tree (RFC 9420,
// Sections 4 and 7) in the array representation of Appendix C. Its number of
// leaves is always a power of two.
//
// Tree hashes are cached per node and invalidated only along the direct path
// of a changed node, so a commit costs O(log n) hashes, not O(n). The
// LeafNode and ParentNode values reachable from a tree are never mutated in
// place: changes replace them, which is what lets Fork share them.
//
// A RatchetTree is not safe for concurrent use.
type RatchetTree struct {
	suite  *Suite
	leaves uint32 // a power of two

	// Storage: a root tree owns nodes; a fork reads through to base and
	// keeps its changes in overlay (copy on write).
	nodes   []treeNode
	base    *RatchetTree
	overlay map[NodeIndex]*treeNode

	// Key indexes for the uniqueness checks of Sections 7.3 and 12.4.3.1.
	// Entries are hints checked against node contents, so a stale entry is
	// harmless and a fork needs only its own additions.
	encKeys map[string]NodeIndex
	sigKeys map[string]LeafIndex

	// Credential bookkeeping for Section 7.3, so that checking a new leaf
	// against all members costs O(credential types), not O(members):
	// members counts non-blank leaves, credUse[T] the leaves whose
	// credential is of type T, credSupport[T] those listing T in their
	// capabilities. A fork gets its own copies (they are tiny).
	members     int
	credUse     map[CredentialType]int
	credSupport map[CredentialType]int
}

type treeNode struct {
	leaf   *LeafNode
	parent *ParentNode
	hash   []byte // cached tree hash; nil when stale
	// blankLeaves counts the blank leaves under the node (itself, for a
	// leaf), so that finding the leftmost blank leaf (Add) and the
	// rightmost non-blank one (truncation) takes O(log n); parents counts
	// the non-blank parents in the subtree, so that an empty resolution
	// (filtered direct paths) is an O(1) test.
	blankLeaves uint32
	parents     uint32
}

func (n *treeNode) blank() bool { return n.leaf == nil && n.parent == nil }

// NewRatchetTree returns a one-member tree holding leaf, as a group creator
// starts with (RFC 9420, Section 11).
func NewRatchetTree(suite *Suite, leaf *LeafNode) *RatchetTree {
	t := &RatchetTree{suite: suite, leaves: 1, nodes: make([]treeNode, 1)}
	t.indexAll()
	t.setLeaf(0, leaf)
	return t
}

func (t *RatchetTree) initIndexes() {
	t.encKeys = make(map[string]NodeIndex)
	t.sigKeys = make(map[string]LeafIndex)
	t.credUse = make(map[CredentialType]int)
	t.credSupport = make(map[CredentialType]int)
	t.members = 0
}

// indexAll rebuilds the indexes and blank-leaf counts from the nodes of a
// root tree.
func (t *RatchetTree) indexAll() {
	t.initIndexes()
	t.countBlanks(t.Root())
	for x := range t.nodes {
		if key := t.encryptionKey(NodeIndex(x)); key != nil {
			t.encKeys[string(key)] = NodeIndex(x)
		}
		if ln := t.nodes[x].leaf; ln != nil {
			t.sigKeys[string(ln.SignatureKey)] = NodeIndex(x).LeafIndex()
			t.countLeaf(ln, 1)
		}
	}
}

func (t *RatchetTree) countBlanks(x NodeIndex) uint32 {
	n := &t.nodes[x]
	switch {
	case !x.IsLeaf():
		n.blankLeaves = t.countBlanks(left(x)) + t.countBlanks(right(x))
		n.parents = t.nodes[left(x)].parents + t.nodes[right(x)].parents
		if n.parent != nil {
			n.parents++
		}
	case n.leaf == nil:
		n.blankLeaves = 1
	default:
		n.blankLeaves = 0
	}
	return n.blankLeaves
}

// countLeaf adds (delta 1) or removes (delta -1) a leaf's credential
// bookkeeping. Each listed type counts once, even if listed twice.
func (t *RatchetTree) countLeaf(ln *LeafNode, delta int) {
	t.members += delta
	t.credUse[ln.Credential.Type] += delta
	for i, ct := range ln.Capabilities.Credentials {
		if !slices.Contains(ln.Capabilities.Credentials[:i], ct) {
			t.credSupport[ct] += delta
		}
	}
}

// Suite returns the tree's cipher suite.
func (t *RatchetTree) Suite() *Suite { return t.suite }

// LeafCount returns the number of leaves, blank or not (a power of two).
func (t *RatchetTree) LeafCount() uint32 { return t.leaves }

// width returns the number of nodes.
func (t *RatchetTree) width() uint32 { return nodeWidth(t.leaves) }

// Root returns the root's node index.
func (t *RatchetTree) Root() NodeIndex { return root(t.leaves) }

func (t *RatchetTree) get(x NodeIndex) *treeNode {
	if t.overlay != nil {
		if n, ok := t.overlay[x]; ok {
			return n
		}
	}
	if t.base != nil {
		return t.base.get(x)
	}
	return &t.nodes[x]
}

// mut returns node x for writing, copying it into the overlay of a fork.
func (t *RatchetTree) mut(x NodeIndex) *treeNode {
	if t.base == nil {
		return &t.nodes[x]
	}
	if n, ok := t.overlay[x]; ok {
		return n
	}
	n := *t.base.get(x)
	t.overlay[x] = &n
	return &n
}

// LeafNode returns the leaf at l, or nil if it is blank or out of range.
// The result must not be modified.
func (t *RatchetTree) LeafNode(l LeafIndex) *LeafNode {
	if uint32(l) >= t.leaves {
		return nil
	}
	return t.get(l.NodeIndex()).leaf
}

// ParentNode returns the parent node at x, or nil if it is blank, a leaf or
// out of range. The result must not be modified.
func (t *RatchetTree) ParentNode(x NodeIndex) *ParentNode {
	if uint32(x) >= t.width() || x.IsLeaf() {
		return nil
	}
	return t.get(x).parent
}

// IsBlank reports whether node x is blank.
func (t *RatchetTree) IsBlank(x NodeIndex) bool { return t.get(x).blank() }

// encryptionKey returns the HPKE public key of a non-blank node.
func (t *RatchetTree) encryptionKey(x NodeIndex) []byte {
	n := t.get(x)
	if n.leaf != nil {
		return n.leaf.EncryptionKey
	}
	if n.parent != nil {
		return n.parent.EncryptionKey
	}
	return nil
}

// invalidate marks the tree hash of x and all its ancestors stale.
func (t *RatchetTree) invalidate(x NodeIndex) { t.invalidateCounting(x, 0, 0) }

// invalidateCounting also adds blankDelta and parentDelta to the blank-leaf
// and non-blank-parent counts of x and its ancestors.
func (t *RatchetTree) invalidateCounting(x NodeIndex, blankDelta, parentDelta int) {
	r := t.Root()
	for {
		n := t.mut(x)
		n.hash = nil
		n.blankLeaves = uint32(int(n.blankLeaves) + blankDelta)
		n.parents = uint32(int(n.parents) + parentDelta)
		if x == r {
			return
		}
		x = parent(x, t.leaves)
	}
}

func (t *RatchetTree) setLeaf(l LeafIndex, ln *LeafNode) {
	x := l.NodeIndex()
	n := t.mut(x)
	delta := 0
	if n.leaf != nil {
		t.countLeaf(n.leaf, -1)
		delta++
	}
	n.leaf, n.parent = ln, nil
	if ln != nil {
		t.countLeaf(ln, 1)
		t.encKeys[string(ln.EncryptionKey)] = x
		t.sigKeys[string(ln.SignatureKey)] = l
		delta--
	}
	t.invalidateCounting(x, delta, 0)
}

func (t *RatchetTree) setParent(x NodeIndex, p *ParentNode) {
	n := t.mut(x)
	delta := 0
	if n.parent != nil {
		delta--
	}
	n.leaf, n.parent = nil, p
	if p != nil {
		t.encKeys[string(p.EncryptionKey)] = x
		delta++
	}
	t.invalidateCounting(x, 0, delta)
}

// blankPath blanks the direct path of leaf l (RFC 9420, Sections 7.5, 12.1).
func (t *RatchetTree) blankPath(l LeafIndex) {
	for _, x := range directPath(l.NodeIndex(), t.leaves) {
		if !t.get(x).blank() {
			t.setParent(x, nil)
		}
	}
}

// HasEncryptionKey reports whether any node holds the HPKE public key.
func (t *RatchetTree) HasEncryptionKey(key []byte) bool {
	_, ok := t.findEncryptionKey(key)
	return ok
}

func (t *RatchetTree) findEncryptionKey(key []byte) (NodeIndex, bool) {
	for u := t; u != nil; u = u.base {
		if x, ok := u.encKeys[string(key)]; ok && uint32(x) < t.width() && bytes.Equal(t.encryptionKey(x), key) {
			return x, true
		}
	}
	return 0, false
}

// FindSignatureKey returns the leaf holding the signature public key.
func (t *RatchetTree) FindSignatureKey(key []byte) (LeafIndex, bool) {
	for u := t; u != nil; u = u.base {
		if l, ok := u.sigKeys[string(key)]; ok {
			if ln := t.LeafNode(l); ln != nil && bytes.Equal(ln.SignatureKey, key) {
				return l, true
			}
		}
	}
	return 0, false
}

// Fork returns a copy-on-write view of t for a pending change: reads fall
// through to t, writes stay in the fork. Forking costs O(1) and a commit's
// changes cost O(log n) memory. t must not be modified while the fork is in
// use; discard the fork to abandon the change, or call Flatten to adopt it.
func (t *RatchetTree) Fork() *RatchetTree {
	return &RatchetTree{
		suite:   t.suite,
		leaves:  t.leaves,
		base:    t,
		overlay: make(map[NodeIndex]*treeNode),
		encKeys: make(map[string]NodeIndex),
		sigKeys: make(map[string]LeafIndex),

		members:     t.members,
		credUse:     maps.Clone(t.credUse),
		credSupport: maps.Clone(t.credSupport),
	}
}

// Flatten turns a fork into a standalone tree by writing its changes into
// the storage of the tree it was forked from, in O(changes). The trees the
// fork was made from must not be used afterwards. Flatten on a tree that is
// not a fork does nothing.
func (t *RatchetTree) Flatten() {
	if t.base == nil {
		return
	}
	b := t.base
	b.Flatten()
	w := t.width()
	if uint32(len(b.nodes)) < w {
		b.nodes = append(b.nodes, make([]treeNode, int(w)-len(b.nodes))...)
	}
	for x, n := range t.overlay {
		if uint32(x) < w {
			b.nodes[x] = *n
		}
	}
	for i := w; i < uint32(len(b.nodes)); i++ {
		b.nodes[i] = treeNode{}
	}
	t.nodes = b.nodes[:w:w]
	if uint32(cap(b.nodes)) > 2*w+64 {
		t.nodes = append([]treeNode(nil), t.nodes...)
	}
	for k, v := range t.encKeys {
		b.encKeys[k] = v
	}
	for k, v := range t.sigKeys {
		b.sigKeys[k] = v
	}
	t.encKeys, t.sigKeys = b.encKeys, b.sigKeys
	t.base, t.overlay = nil, nil
	*b = RatchetTree{} // catch use after Flatten
}

// Clone returns an independent deep copy of the tree structure (node values
// are shared, as they are immutable). It costs O(n); prefer Fork.
func (t *RatchetTree) Clone() *RatchetTree {
	c := &RatchetTree{suite: t.suite, leaves: t.leaves, nodes: make([]treeNode, t.width())}
	for x := range c.nodes {
		c.nodes[x] = *t.get(NodeIndex(x))
	}
	c.indexAll()
	return c
}

// extend doubles the tree: the old tree becomes the left subtree of a new
// blank root, beside a blank right subtree (RFC 9420, Section 7.7).
func (t *RatchetTree) extend() {
	oldRoot := t.get(t.Root())
	oldWidth, oldBlanks, oldParents, half := t.width(), oldRoot.blankLeaves, oldRoot.parents, t.leaves
	t.leaves *= 2
	w := t.width()
	if t.base == nil {
		t.nodes = append(t.nodes, make([]treeNode, w-oldWidth)...)
	}
	newRoot := t.Root() // == oldWidth
	for x := NodeIndex(oldWidth); x < NodeIndex(w); x++ {
		n := &treeNode{blankLeaves: 1 << level(x)}
		if x == newRoot {
			n.blankLeaves = oldBlanks + half
			n.parents = oldParents
		}
		if t.base == nil {
			t.nodes[x] = *n
		} else {
			t.overlay[x] = n
		}
	}
}

// truncate drops right subtrees without a non-blank leaf (RFC 9420, Section
// 12.1.3): the tree keeps 2^d leaves for the smallest d with 2^d > L, L the
// rightmost non-blank leaf. Parents above only blank leaves are blank in a
// valid tree, because removing a leaf blanks its direct path.
func (t *RatchetTree) truncate() {
	last := int64(-1)
	if x := t.Root(); t.get(x).blankLeaves < t.leaves {
		// Descend towards the rightmost subtree holding a non-blank leaf.
		for !x.IsLeaf() {
			if r := right(x); t.get(r).blankLeaves < 1<<level(r) {
				x = r
			} else {
				x = left(x)
			}
		}
		last = int64(x.LeafIndex())
	}
	n := uint32(1)
	for int64(n) <= last {
		n *= 2
	}
	if n >= t.leaves {
		return
	}
	t.leaves = n
	if t.base == nil {
		w := t.width()
		clear(t.nodes[w:])
		t.nodes = t.nodes[:w]
		if cap(t.nodes) > 4*int(w)+64 {
			t.nodes = append([]treeNode(nil), t.nodes...)
		}
	}
	// The new root's hash covers exactly its old subtree, so caches stay valid.
}

// AddLeaf places ln in the leftmost blank leaf, extending the tree if there
// is none, and records it as unmerged at every non-blank ancestor (RFC 9420,
// Section 12.1.1). The caller validates ln first (ValidateLeafNode); a leaf
// that cannot be encoded breaks the tree hash. It costs O(log n).
func (t *RatchetTree) AddLeaf(ln *LeafNode) LeafIndex {
	if t.get(t.Root()).blankLeaves == 0 {
		t.extend()
	}
	x := t.Root()
	for !x.IsLeaf() {
		if t.get(left(x)).blankLeaves > 0 {
			x = left(x)
		} else {
			x = right(x)
		}
	}
	l := x.LeafIndex()
	for _, x := range directPath(l.NodeIndex(), t.leaves) {
		if p := t.get(x).parent; p != nil {
			np := p.Clone()
			i, _ := slices.BinarySearch(np.UnmergedLeaves, l)
			np.UnmergedLeaves = slices.Insert(np.UnmergedLeaves, i, l)
			t.setParent(x, np)
		}
	}
	t.setLeaf(l, ln)
	return l
}

// RemoveLeaf blanks leaf l and its direct path, then truncates the tree
// (RFC 9420, Section 12.1.3).
func (t *RatchetTree) RemoveLeaf(l LeafIndex) error {
	if t.LeafNode(l) == nil {
		return fmt.Errorf("mls: removing leaf %d: %w", l, ErrBlankLeaf)
	}
	t.setLeaf(l, nil)
	t.blankPath(l)
	t.truncate()
	return nil
}

// UpdateLeaf replaces the leaf at l and blanks its direct path, as an Update
// proposal does (RFC 9420, Section 12.1.2).
func (t *RatchetTree) UpdateLeaf(l LeafIndex, ln *LeafNode) error {
	if t.LeafNode(l) == nil {
		return fmt.Errorf("mls: updating leaf %d: %w", l, ErrBlankLeaf)
	}
	t.setLeaf(l, ln)
	t.blankPath(l)
	return nil
}

// Resolution returns the resolution of node x (RFC 9420, Section 4.1.1).
func (t *RatchetTree) Resolution(x NodeIndex) []NodeIndex {
	return t.resolution(x, nil, nil)
}

// resolution appends the resolution of x to out, leaving out the leaves in
// exclude (leaves added by the commit being built, Section 7.6).
func (t *RatchetTree) resolution(x NodeIndex, exclude []LeafIndex, out []NodeIndex) []NodeIndex {
	n := t.get(x)
	switch {
	case n.leaf != nil:
		if !slices.Contains(exclude, x.LeafIndex()) {
			out = append(out, x)
		}
		return out
	case n.parent != nil:
		out = append(out, x)
		for _, l := range n.parent.UnmergedLeaves {
			if !slices.Contains(exclude, l) {
				out = append(out, l.NodeIndex())
			}
		}
		return out
	case x.IsLeaf():
		return out
	}
	out = t.resolution(left(x), exclude, out)
	return t.resolution(right(x), exclude, out)
}

// resolutionEmpty reports whether x has an empty resolution, without
// building it.
func (t *RatchetTree) resolutionEmpty(x NodeIndex) bool {
	n := t.get(x)
	return n.parents == 0 && n.blankLeaves == 1<<level(x)
}

// filteredDirectPath returns the filtered direct path of leaf l and, for
// each of its nodes, the child on l's copath (RFC 9420, Section 4.1.2).
func (t *RatchetTree) filteredDirectPath(l LeafIndex) (path, copathChild []NodeIndex) {
	x := l.NodeIndex()
	r := t.Root()
	for x != r {
		p := parent(x, t.leaves)
		s := sibling(x, t.leaves)
		if !t.resolutionEmpty(s) {
			path = append(path, p)
			copathChild = append(copathChild, s)
		}
		x = p
	}
	return path, copathChild
}

// FilteredDirectPath returns the filtered direct path of leaf l.
func (t *RatchetTree) FilteredDirectPath(l LeafIndex) []NodeIndex {
	p, _ := t.filteredDirectPath(l)
	return p
}

// --- Tree hashes, RFC 9420, Section 7.8 ---

func (t *RatchetTree) leafTreeHashInput(l LeafIndex, ln *LeafNode) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, 512))
	b.AddUint8(uint8(NodeTypeLeaf))
	b.AddUint32(uint32(l))
	addOptional(b, ln != nil)
	if ln != nil {
		ln.marshal(b)
	}
	out, err := b.Bytes()
	if err != nil {
		// Only unencodable values (unknown enum values) fail, and trees only
		// hold decoded or validated nodes.
		panic("mls: tree hash input: " + err.Error())
	}
	return out
}

func (t *RatchetTree) parentTreeHashInput(p *ParentNode, leftHash, rightHash []byte) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, 256))
	b.AddUint8(uint8(NodeTypeParent))
	addOptional(b, p != nil)
	if p != nil {
		p.marshal(b)
	}
	addVarBytes(b, leftHash)
	addVarBytes(b, rightHash)
	out, err := b.Bytes()
	if err != nil {
		panic("mls: tree hash input: " + err.Error())
	}
	return out
}

// TreeHash returns the tree hash of the root.
func (t *RatchetTree) TreeHash() []byte { return t.treeHash(t.Root()) }

// NodeTreeHash returns the tree hash of the subtree under x.
func (t *RatchetTree) NodeTreeHash(x NodeIndex) []byte { return t.treeHash(x) }

func (t *RatchetTree) treeHash(x NodeIndex) []byte {
	// A node's cached hash is valid for a fork too: any node whose subtree
	// the fork changed has its own overlay copy with the cache cleared.
	n := t.get(x)
	if n.hash != nil {
		return n.hash
	}
	var h []byte
	if x.IsLeaf() {
		h = t.suite.Hash(t.leafTreeHashInput(x.LeafIndex(), n.leaf))
	} else {
		lh, rh := t.treeHash(left(x)), t.treeHash(right(x))
		h = t.suite.Hash(t.parentTreeHashInput(n.parent, lh, rh))
	}
	n.hash = h
	return h
}

// subtreeLeaves returns the range [lo, hi] of leaf indices under x.
func subtreeLeaves(x NodeIndex) (lo, hi LeafIndex) {
	span := uint32(1)<<level(x) - 1
	return LeafIndex((uint32(x) - span) / 2), LeafIndex((uint32(x) + span) / 2)
}

// leavesUnder returns the entries of sorted that lie under x.
func leavesUnder(x NodeIndex, sorted []LeafIndex) []LeafIndex {
	lo, hi := subtreeLeaves(x)
	i, _ := slices.BinarySearch(sorted, lo)
	j, _ := slices.BinarySearch(sorted, hi+1)
	return sorted[i:j]
}

// originalTreeHash returns the tree hash of x with the leaves in exclude
// (sorted) blanked and dropped from all unmerged_leaves lists, as the
// original_sibling_tree_hash of Section 7.9 requires. Subtrees without
// excluded leaves reuse their cached hashes.
func (t *RatchetTree) originalTreeHash(x NodeIndex, exclude []LeafIndex) []byte {
	exclude = leavesUnder(x, exclude)
	if len(exclude) == 0 {
		return t.treeHash(x)
	}
	if x.IsLeaf() {
		return t.suite.Hash(t.leafTreeHashInput(x.LeafIndex(), nil))
	}
	lh := t.originalTreeHash(left(x), exclude)
	rh := t.originalTreeHash(right(x), exclude)
	p := t.get(x).parent
	if p != nil {
		q := *p
		q.UnmergedLeaves = nil
		for _, l := range p.UnmergedLeaves {
			if _, found := slices.BinarySearch(exclude, l); !found {
				q.UnmergedLeaves = append(q.UnmergedLeaves, l)
			}
		}
		p = &q
	}
	return t.suite.Hash(t.parentTreeHashInput(p, lh, rh))
}

// --- Parent hashes, RFC 9420, Section 7.9 ---

// parentHash computes the hash of ParentHashInput for node p with the given
// original sibling tree hash.
func (t *RatchetTree) parentHash(p *ParentNode, originalSiblingTreeHash []byte) []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, 256))
	addVarBytes(b, p.EncryptionKey)
	addVarBytes(b, p.ParentHash)
	addVarBytes(b, originalSiblingTreeHash)
	in, err := b.Bytes()
	if err != nil {
		panic("mls: parent hash input: " + err.Error())
	}
	return t.suite.Hash(in)
}

func nodeParentHash(n *treeNode) []byte {
	switch {
	case n.parent != nil:
		return n.parent.ParentHash
	case n.leaf != nil && n.leaf.Source == LeafNodeSourceCommit:
		return n.leaf.ParentHash
	}
	return nil
}

// linkCandidate returns the only node D that can link to a parent P through
// its child C (Section 7.9.2): the resolution of C with D removed must be
// exactly P's unmerged leaves under C, so D is the one entry of res that is
// not one of those leaves, found in one linear pass. This keeps a hostile
// tree from forcing a quadratic search.
func linkCandidate(res []NodeIndex, unmerged []LeafIndex) (NodeIndex, bool) {
	if len(res) != len(unmerged)+1 {
		return 0, false
	}
	i := 0
	for i < len(unmerged) && res[i] == unmerged[i].NodeIndex() {
		i++
	}
	for j := i; j < len(unmerged); j++ {
		if res[j+1] != unmerged[j].NodeIndex() {
			return 0, false
		}
	}
	return res[i], true
}

// verifyParentHash checks that exactly one descendant of the non-blank
// parent x carries a valid parent-hash link to it (RFC 9420, Section 7.9.2,
// "top down"). Since every non-blank parent is checked, each chain then
// reaches down to a leaf.
func (t *RatchetTree) verifyParentHash(x NodeIndex) error {
	p := t.get(x).parent
	found := 0
	for _, side := range [2][2]NodeIndex{{left(x), right(x)}, {right(x), left(x)}} {
		c, s := side[0], side[1]
		ph := t.parentHash(p, t.originalTreeHash(s, p.UnmergedLeaves))
		res := t.resolution(c, nil, nil)
		if d, ok := linkCandidate(res, leavesUnder(c, p.UnmergedLeaves)); ok && bytes.Equal(nodeParentHash(t.get(d)), ph) {
			found++
		}
	}
	switch found {
	case 1:
		return nil
	case 0:
		return &TreeValidationError{Node: x, Kind: ErrParentHash, Reason: "no descendant links to this parent"}
	default:
		return &TreeValidationError{Node: x, Kind: ErrParentHash, Reason: "several descendants link to this parent"}
	}
}

// --- The ratchet_tree extension, RFC 9420, Section 12.4.3.3 ---

// MarshalBinary encodes the tree as optional<Node> ratchet_tree<V>, without
// the blank nodes after the last non-blank one.
func (t *RatchetTree) MarshalBinary() ([]byte, error) {
	last := int64(t.width()) - 1
	for last >= 0 && t.get(NodeIndex(last)).blank() {
		last--
	}
	return marshal(func(b *cryptobyte.Builder) {
		addVarVector(b, func(b *cryptobyte.Builder) {
			for x := NodeIndex(0); int64(x) <= last; x++ {
				n := t.get(x)
				addOptional(b, !n.blank())
				if !n.blank() {
					(&Node{Leaf: n.leaf, Parent: n.parent}).marshal(b)
				}
			}
		})
	})
}

// Extension returns the tree as a ratchet_tree extension.
func (t *RatchetTree) Extension() (Extension, error) {
	data, err := t.MarshalBinary()
	if err != nil {
		return Extension{}, err
	}
	return Extension{Type: ExtensionRatchetTree, Data: data}, nil
}

// maxTreeLeaves bounds decoded trees; the varint length limit already caps
// them near 2^30 bytes, this keeps the node array allocation sane.
const maxTreeLeaves = 1 << 24

// UnmarshalRatchetTree decodes a ratchet_tree extension body without
// validating it beyond its shape: leaves at even and parents at odd
// positions, a non-blank last node (RFC 9420, Section 12.4.3.3). Use
// ImportRatchetTree for a tree received from a peer.
func UnmarshalRatchetTree(suite *Suite, data []byte) (*RatchetTree, error) {
	var nodes []treeNode
	shapeErr := error(nil)
	err := unmarshalAll("ratchet_tree", data, func(s *cryptobyte.String) bool {
		return readVectorElems(s, func(s *cryptobyte.String) bool {
			var present bool
			if !readOptional(s, &present) {
				return false
			}
			var tn treeNode
			if present {
				var n Node
				if !n.unmarshal(s) {
					return false
				}
				x := NodeIndex(len(nodes))
				if x.IsLeaf() != (n.Leaf != nil) {
					shapeErr = &TreeValidationError{Node: x, Kind: ErrDecode, Reason: "node type does not match its position"}
					return false
				}
				tn = treeNode{leaf: n.Leaf, parent: n.Parent}
			}
			nodes = append(nodes, tn)
			return len(nodes) <= 2*maxTreeLeaves
		})
	})
	if shapeErr != nil {
		return nil, shapeErr
	}
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 || nodes[len(nodes)-1].blank() {
		return nil, &TreeValidationError{Node: NodeIndex(max(len(nodes), 1) - 1), Kind: ErrDecode, Reason: "empty tree or trailing blank node"}
	}
	leaves := uint32(1)
	for nodeWidth(leaves) < uint32(len(nodes)) {
		leaves *= 2
	}
	t := &RatchetTree{suite: suite, leaves: leaves}
	t.nodes = append(nodes, make([]treeNode, int(nodeWidth(leaves))-len(nodes))...)
	t.indexAll()
	return t, nil
}

// FindLeaf returns the leaf holding exactly ln, as a joiner locates its own
// leaf in an imported tree (RFC 9420, Section 12.4.3.1).
func (t *RatchetTree) FindLeaf(ln *LeafNode) (LeafIndex, bool) {
	l, ok := t.FindSignatureKey(ln.SignatureKey)
	if !ok {
		return 0, false
	}
	a, errA := t.LeafNode(l).MarshalBinary()
	b, errB := ln.MarshalBinary()
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		return 0, false
	}
	return l, true
}

// Leaves calls f for every non-blank leaf in order, stopping if f returns
// false.
func (t *RatchetTree) Leaves(f func(l LeafIndex, ln *LeafNode) bool) {
	for l := LeafIndex(0); uint32(l) < t.leaves; l++ {
		if ln := t.LeafNode(l); ln != nil && !f(l, ln) {
			return
		}
	}
}

// MemberCount returns the number of non-blank leaves.
func (t *RatchetTree) MemberCount() int { return t.members }
