package mls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// HPKECiphertext is an HPKE encryption of a path secret (RFC 9420, Section 7.6).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, c.KEMOutput)
	addVarBytes(b, c.Ciphertext)
}

func (c *HPKECiphertext) unmarshal(s *cryptobyte.String) bool {
	*c = HPKECiphertext{}
	return readVarBytes(s, &c.KEMOutput) && readVarBytes(s, &c.Ciphertext)
}

// UpdatePathNode carries the new public key of one node of the sender's
// filtered direct path and the path secret encrypted to each node of the
// copath child's resolution, in order (RFC 9420, Section 7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte // HPKEPublicKey
	EncryptedPathSecret []HPKECiphertext
}

func (n *UpdatePathNode) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, n.EncryptionKey)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].marshal(b)
		}
	})
}

func (n *UpdatePathNode) unmarshal(s *cryptobyte.String) bool {
	*n = UpdatePathNode{}
	return readVarBytes(s, &n.EncryptionKey) &&
		readVectorElems(s, func(s *cryptobyte.String) bool {
			var c HPKECiphertext
			if !c.unmarshal(s) {
				return false
			}
			n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
			return true
		})
}

// UpdatePath is the sender's new leaf and the new keys of its filtered
// direct path, bottom up (RFC 9420, Section 7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (p *UpdatePath) marshal(b *cryptobyte.Builder) {
	p.LeafNode.marshal(b)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range p.Nodes {
			p.Nodes[i].marshal(b)
		}
	})
}

func (p *UpdatePath) unmarshal(s *cryptobyte.String) bool {
	*p = UpdatePath{}
	return p.LeafNode.unmarshal(s) &&
		readVectorElems(s, func(s *cryptobyte.String) bool {
			var n UpdatePathNode
			if !n.unmarshal(s) {
				return false
			}
			p.Nodes = append(p.Nodes, n)
			return true
		})
}

// MarshalBinary encodes the UpdatePath.
func (p *UpdatePath) MarshalBinary() ([]byte, error) { return marshal(p.marshal) }

// UnmarshalUpdatePath decodes one UpdatePath, rejecting trailing bytes.
func UnmarshalUpdatePath(data []byte) (*UpdatePath, error) {
	p := new(UpdatePath)
	if err := unmarshalAll("UpdatePath", data, p.unmarshal); err != nil {
		return nil, err
	}
	return p, nil
}

// UnmarshalUpdatePath and MarshalBinary above are the wire form; below is
// TreeKEM itself (RFC 9420, Sections 7.4-7.6).

// updatePathNodeLabel is the EncryptWithLabel label of Section 7.6.
const updatePathNodeLabel = "UpdatePathNode"

// GroupContextFunc returns the encoded provisional GroupContext for the
// given tree hash of the tree with the UpdatePath merged (RFC 9420, Section
// 12.4.2). It is called exactly once, after the merge and before any HPKE
// operation, because the context of those operations covers that tree hash.
type GroupContextFunc func(treeHash []byte) ([]byte, error)

// CreatePathParams are the inputs of CreateUpdatePath.
type CreatePathParams struct {
	// Leaf is the committer's leaf.
	Leaf LeafIndex
	// GroupID is the signing context of the new leaf node.
	GroupID []byte
	// SigningKey signs the new leaf node; its public key becomes the leaf's
	// signature_key.
	SigningKey *SigningKey
	// LeafNode, if set, supplies the credential, capabilities and extensions
	// of the new leaf; otherwise the current leaf's are kept.
	LeafNode *LeafNode
	// Exclude lists the leaves added by the same commit, which receive the
	// path secret through the Welcome instead (Section 7.6).
	Exclude []LeafIndex
	// GroupContext supplies the provisional GroupContext.
	GroupContext GroupContextFunc
	// Rand supplies the fresh leaf secret and the HPKE encryption randomness.
	Rand io.Reader
}

// PathSecrets is the private outcome of creating or processing an
// UpdatePath. Its secrets must be erased (Erase) once the epoch is set up.
type PathSecrets struct {
	// CommitSecret is path_secret[n+1], the commit_secret of the key schedule.
	CommitSecret []byte
	// LeafKey is the committer's new leaf private key (creation only).
	LeafKey *HPKEPrivateKey
	// NodeKeys holds the private keys of the updated nodes the member now knows.
	NodeKeys map[NodeIndex]*HPKEPrivateKey
	// Secrets holds the path secret of each of those nodes, which the
	// committer sends to new members in the Welcome (Section 12.4.3.1).
	Secrets map[NodeIndex][]byte
}

// Erase zeroes every secret and private key.
func (p *PathSecrets) Erase() {
	clear(p.CommitSecret)
	if p.LeafKey != nil {
		p.LeafKey.Erase()
	}
	for _, k := range p.NodeKeys {
		k.Erase()
	}
	for _, s := range p.Secrets {
		clear(s)
	}
}

// derivePath derives, from the first path secret, the secrets and key pairs
// of count nodes and then the commit secret (RFC 9420, Section 7.4):
// path_secret[n] = DeriveSecret(path_secret[n-1], "path"),
// node_priv[n] = DeriveKeyPair(DeriveSecret(path_secret[n], "node")).
func (s *Suite) derivePath(first []byte, count int) (secrets [][]byte, keys []*HPKEPrivateKey, commitSecret []byte, err error) {
	ps := first
	for i := 0; i < count; i++ {
		if i > 0 {
			if ps, err = s.DeriveSecret(ps, "path"); err != nil {
				return nil, nil, nil, err
			}
		}
		key, err := s.nodeKeyPair(ps)
		if err != nil {
			return nil, nil, nil, err
		}
		secrets = append(secrets, ps)
		keys = append(keys, key)
	}
	if count == 0 {
		return nil, nil, first, nil
	}
	commitSecret, err = s.DeriveSecret(ps, "path")
	return secrets, keys, commitSecret, err
}

// nodeKeyPair derives a node's key pair from its path secret.
func (s *Suite) nodeKeyPair(pathSecret []byte) (*HPKEPrivateKey, error) {
	nodeSecret, err := s.DeriveSecret(pathSecret, "node")
	if err != nil {
		return nil, err
	}
	defer clear(nodeSecret)
	return s.DeriveKeyPair(nodeSecret)
}

// NodeKeyFromPathSecret derives the HPKE key pair of a node from its path
// secret, as a new member does with the path_secret of its Welcome.
func (s *Suite) NodeKeyFromPathSecret(pathSecret []byte) (*HPKEPrivateKey, error) {
	return s.nodeKeyPair(pathSecret)
}

// mergePath blanks the direct path of leaf l, installs the new public keys
// on its filtered direct path with parent hashes computed from the root
// down, and returns the parent hash the leaf must carry (RFC 9420, Sections
// 7.5 and 7.9). The copath subtrees are untouched, so their tree hashes are
// the original sibling tree hashes.
func (t *RatchetTree) mergePath(l LeafIndex, path, copathChild []NodeIndex, keys [][]byte) []byte {
	t.blankPath(l)
	var ph []byte // the root's parent_hash is empty
	for i := len(path) - 1; i >= 0; i-- {
		p := &ParentNode{EncryptionKey: keys[i], ParentHash: ph}
		t.setParent(path[i], p)
		ph = t.parentHash(p, t.treeHash(copathChild[i]))
	}
	return ph
}

// CreateUpdatePath refreshes the committer's leaf and filtered direct path
// in t and returns the UpdatePath to send with the commit and the
// committer's new secrets (RFC 9420, Sections 7.4-7.6, 12.4.2). t must
// already reflect the commit's proposals; pass a Fork, which holds the
// pending state until the commit is confirmed, and discard it on error.
func (t *RatchetTree) CreateUpdatePath(p *CreatePathParams) (*UpdatePath, *PathSecrets, error) {
	s := t.suite
	if p.SigningKey == nil || p.GroupContext == nil || p.Rand == nil {
		return nil, nil, errors.New("mls: creating update path: SigningKey, GroupContext and Rand are required")
	}
	old := t.LeafNode(p.Leaf)
	if old == nil {
		return nil, nil, fmt.Errorf("mls: creating update path: leaf %d: %w", p.Leaf, ErrBlankLeaf)
	}
	path, copathChild := t.filteredDirectPath(p.Leaf)

	leafSecret := make([]byte, s.HashSize())
	if _, err := io.ReadFull(p.Rand, leafSecret); err != nil {
		return nil, nil, fmt.Errorf("mls: creating update path: %w", err)
	}
	defer clear(leafSecret)
	leafKey, err := s.nodeKeyPair(leafSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: creating update path: %w", err)
	}
	var first []byte
	if first, err = s.DeriveSecret(leafSecret, "path"); err != nil {
		return nil, nil, fmt.Errorf("mls: creating update path: %w", err)
	}
	secrets, keys, commitSecret, err := s.derivePath(first, len(path))
	if err != nil {
		return nil, nil, fmt.Errorf("mls: creating update path: %w", err)
	}
	out := &PathSecrets{
		CommitSecret: commitSecret,
		LeafKey:      leafKey,
		NodeKeys:     make(map[NodeIndex]*HPKEPrivateKey, len(path)),
		Secrets:      make(map[NodeIndex][]byte, len(path)),
	}
	pubs := make([][]byte, len(path))
	for i, x := range path {
		out.NodeKeys[x] = keys[i]
		out.Secrets[x] = secrets[i]
		pubs[i] = keys[i].PublicKey()
	}

	ph := t.mergePath(p.Leaf, path, copathChild, pubs)
	tmpl := old
	if p.LeafNode != nil {
		tmpl = p.LeafNode
	}
	leaf := &LeafNode{
		EncryptionKey: leafKey.PublicKey(),
		SignatureKey:  p.SigningKey.PublicKey(),
		Credential:    tmpl.Credential,
		Capabilities:  tmpl.Capabilities,
		Source:        LeafNodeSourceCommit,
		ParentHash:    ph,
		Extensions:    tmpl.Extensions,
	}
	if err := leaf.Sign(p.SigningKey, p.GroupID, p.Leaf); err != nil {
		out.Erase()
		return nil, nil, fmt.Errorf("mls: creating update path: %w", err)
	}
	t.setLeaf(p.Leaf, leaf)

	ctx, err := p.GroupContext(t.TreeHash())
	if err != nil {
		out.Erase()
		return nil, nil, fmt.Errorf("mls: creating update path: group context: %w", err)
	}
	up := &UpdatePath{LeafNode: *leaf, Nodes: make([]UpdatePathNode, len(path))}
	var res []NodeIndex
	for i := range path {
		res = t.resolution(copathChild[i], p.Exclude, res[:0])
		n := UpdatePathNode{EncryptionKey: pubs[i], EncryptedPathSecret: make([]HPKECiphertext, len(res))}
		for j, r := range res {
			kem, ct, err := s.EncryptWithLabel(t.encryptionKey(r), updatePathNodeLabel, ctx, secrets[i], p.Rand)
			if err != nil {
				out.Erase()
				return nil, nil, fmt.Errorf("mls: creating update path: encrypting to node %d: %w", r, err)
			}
			n.EncryptedPathSecret[j] = HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		}
		up.Nodes[i] = n
	}
	return up, out, nil
}

// ProcessPathParams are the inputs of ProcessUpdatePath.
type ProcessPathParams struct {
	// Sender is the committer's leaf.
	Sender LeafIndex
	// Path is the received UpdatePath.
	Path *UpdatePath
	// Validation holds the group parameters the new leaf node is checked
	// against (Section 7.3); its GroupID is the signing context.
	Validation *LeafValidation
	// Exclude lists the leaves added by the same commit (Section 7.6).
	Exclude []LeafIndex
	// Receiver is this member's leaf; it must differ from Sender.
	Receiver LeafIndex
	// PrivateKey returns this member's private key for node x, or nil.
	PrivateKey func(x NodeIndex) *HPKEPrivateKey
	// GroupContext supplies the provisional GroupContext.
	GroupContext GroupContextFunc
}

// ProcessUpdatePath validates a received UpdatePath, merges it into t and
// decrypts the path secret at the lowest node of the sender's filtered
// direct path above the receiver, deriving the keys from there up and
// checking them against the public keys sent (RFC 9420, Sections 7.5, 7.6,
// 12.4.2). t must already reflect the commit's proposals; pass a Fork and
// discard it on error. The result's NodeKeys replace the receiver's keys
// for those nodes.
func (t *RatchetTree) ProcessUpdatePath(p *ProcessPathParams) (*PathSecrets, error) {
	s := t.suite
	fail := func(format string, args ...any) error {
		return fmt.Errorf("mls: processing update path from leaf %d: %w: %s", p.Sender, ErrInvalidUpdatePath, fmt.Sprintf(format, args...))
	}
	if p.Path == nil || p.Validation == nil || p.PrivateKey == nil || p.GroupContext == nil {
		return nil, errors.New("mls: processing update path: Path, Validation, PrivateKey and GroupContext are required")
	}
	old := t.LeafNode(p.Sender)
	if old == nil || t.LeafNode(p.Receiver) == nil || p.Sender == p.Receiver {
		return nil, fmt.Errorf("mls: processing update path: sender %d, receiver %d: %w", p.Sender, p.Receiver, ErrBlankLeaf)
	}
	path, copathChild := t.filteredDirectPath(p.Sender)
	if len(p.Path.Nodes) != len(path) {
		return nil, fail("%d nodes for a filtered direct path of %d", len(p.Path.Nodes), len(path))
	}
	leaf := &p.Path.LeafNode
	if err := t.ValidateLeafNode(leaf, p.Sender, LeafNodeSourceCommit, p.Validation); err != nil {
		return nil, fmt.Errorf("mls: processing update path: %w", err)
	}
	// RFC 9420, Section 12.4.2: a fresh leaf key, and no key already in the tree.
	if bytes.Equal(leaf.EncryptionKey, old.EncryptionKey) {
		return nil, fail("leaf encryption key not changed")
	}
	pubs := make([][]byte, len(path))
	for i := range p.Path.Nodes {
		pubs[i] = p.Path.Nodes[i].EncryptionKey
		if err := s.ValidateHPKEPublicKey(pubs[i]); err != nil {
			return nil, fmt.Errorf("mls: processing update path from leaf %d: %w: node %d: %w", p.Sender, ErrInvalidUpdatePath, path[i], err)
		}
		if t.HasEncryptionKey(pubs[i]) || bytes.Equal(pubs[i], leaf.EncryptionKey) || slices.ContainsFunc(pubs[:i], func(k []byte) bool { return bytes.Equal(k, pubs[i]) }) {
			return nil, fail("node %d: encryption key not fresh", path[i])
		}
	}
	// Find the receiver's place before the merge changes nothing below the
	// copath, so the resolution is the same before and after.
	ai := -1
	for i, c := range copathChild {
		if c == p.Receiver.NodeIndex() || isAncestor(c, p.Receiver.NodeIndex()) {
			ai = i
			break
		}
	}
	if ai < 0 {
		return nil, fail("receiver %d not below the sender's filtered direct path", p.Receiver)
	}
	res := t.resolution(copathChild[ai], p.Exclude, nil)
	cts := p.Path.Nodes[ai].EncryptedPathSecret
	if len(cts) != len(res) {
		return nil, fail("node %d: %d ciphertexts for a resolution of %d", path[ai], len(cts), len(res))
	}
	ri := -1
	var key *HPKEPrivateKey
	for j, r := range res {
		if k := p.PrivateKey(r); k != nil {
			ri, key = j, k
			break
		}
	}

	ph := t.mergePath(p.Sender, path, copathChild, pubs)
	if !bytes.Equal(ph, leaf.ParentHash) {
		return nil, fmt.Errorf("mls: processing update path from leaf %d: %w: leaf parent hash %x, want %x", p.Sender, ErrParentHash, leaf.ParentHash, ph)
	}
	t.setLeaf(p.Sender, leaf.Clone())
	if key == nil {
		return nil, fmt.Errorf("mls: processing update path: resolution of node %d: %w", copathChild[ai], ErrNoPrivateKey)
	}

	ctx, err := p.GroupContext(t.TreeHash())
	if err != nil {
		return nil, fmt.Errorf("mls: processing update path: group context: %w", err)
	}
	first, err := s.DecryptWithLabel(key, updatePathNodeLabel, ctx, cts[ri].KEMOutput, cts[ri].Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls: processing update path: decrypting at node %d: %w", path[ai], err)
	}
	secrets, keys, commitSecret, err := s.derivePath(first, len(path)-ai)
	if err != nil {
		clear(first)
		return nil, fmt.Errorf("mls: processing update path: %w", err)
	}
	out := &PathSecrets{
		CommitSecret: commitSecret,
		NodeKeys:     make(map[NodeIndex]*HPKEPrivateKey, len(keys)),
		Secrets:      make(map[NodeIndex][]byte, len(keys)),
	}
	for i, k := range keys {
		x := path[ai+i]
		out.NodeKeys[x] = k
		out.Secrets[x] = secrets[i]
		if !bytes.Equal(k.PublicKey(), pubs[ai+i]) {
			out.Erase()
			return nil, fail("node %d: derived public key does not match", x)
		}
	}
	return out, nil
}

// JoinPathSecrets derives the keys a new member learns from the
// path_secret of its Welcome (RFC 9420, Section 12.4.3.1): pathSecret is
// the secret of node x, the lowest node of the committer's filtered direct
// path above the new member, and every node from x up to the root follows
// by DeriveSecret(path_secret, "path"). Each derived public key must match
// the tree. The result's CommitSecret is the commit_secret the committer
// used.
func (t *RatchetTree) JoinPathSecrets(committer LeafIndex, x NodeIndex, pathSecret []byte) (*PathSecrets, error) {
	path := t.FilteredDirectPath(committer)
	i := slices.Index(path, x)
	if i < 0 {
		return nil, fmt.Errorf("mls: path secret for node %d, not on the filtered direct path of leaf %d: %w", x, committer, ErrInvalidUpdatePath)
	}
	secrets, keys, commitSecret, err := t.suite.derivePath(clone(pathSecret), len(path)-i)
	if err != nil {
		return nil, fmt.Errorf("mls: deriving path keys: %w", err)
	}
	out := &PathSecrets{
		CommitSecret: commitSecret,
		NodeKeys:     make(map[NodeIndex]*HPKEPrivateKey, len(keys)),
		Secrets:      make(map[NodeIndex][]byte, len(keys)),
	}
	for j, k := range keys {
		y := path[i+j]
		out.NodeKeys[y], out.Secrets[y] = k, secrets[j]
		if !bytes.Equal(k.PublicKey(), t.encryptionKey(y)) {
			out.Erase()
			return nil, fmt.Errorf("mls: path secret does not match the public key of node %d: %w", y, ErrInvalidUpdatePath)
		}
	}
	return out, nil
}
