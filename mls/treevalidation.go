package mls

import (
	"bytes"
	"fmt"
	"slices"
	"time"
)

// LeafValidation holds the group parameters a LeafNode is checked against
// (RFC 9420, Section 7.3).
type LeafValidation struct {
	// GroupID is the signing context of update and commit leaves.
	GroupID []byte
	// Version is the group's protocol version; zero means mls10.
	Version ProtocolVersion
	// RequiredCapabilities is the group's required_capabilities extension, if any.
	RequiredCapabilities *RequiredCapabilities
	// Now is the current time, for the lifetime of key_package leaves.
	Now time.Time
	// IgnoreLifetime skips the lifetime check, which RFC 9420, Section 7.3
	// makes RECOMMENDED, not required, for leaves the client receives
	// (they may expire between sending and receipt).
	IgnoreLifetime bool
}

func (v *LeafValidation) version() ProtocolVersion {
	if v.Version == 0 {
		return ProtocolVersionMLS10
	}
	return v.Version
}

// checkLeafContent runs the checks of Section 7.3 that concern the leaf
// alone: signature, capabilities, lifetime and extensions.
func checkLeafContent(s *Suite, ln *LeafNode, l LeafIndex, v *LeafValidation) error {
	caps := &ln.Capabilities
	// A joining member must declare support for the group's version and
	// suite (RFC 9420, Sections 7.2 and 10.1). Members already in the group
	// were checked when they joined; deployed implementations do not all
	// list the suite again in later leaves (the official treekem vectors
	// omit it), so update and commit leaves are not held to it.
	if ln.Source == LeafNodeSourceKeyPackage {
		if !caps.SupportsVersion(v.version()) {
			return fmt.Errorf("protocol version %d not in capabilities", v.version())
		}
		if !caps.SupportsCipherSuite(s.ID()) {
			return fmt.Errorf("cipher suite %v not in capabilities", s.ID())
		}
	}
	// RFC 9420, Section 7.2: the leaf's own credential type must be listed.
	if !caps.SupportsCredential(ln.Credential.Type) {
		return fmt.Errorf("own credential type %d not in capabilities", ln.Credential.Type)
	}
	if v.RequiredCapabilities != nil {
		if err := caps.checkRequired(v.RequiredCapabilities); err != nil {
			return err
		}
	}
	// An unusable key would make every later commit fail to encrypt to it.
	if err := s.ValidateHPKEPublicKey(ln.EncryptionKey); err != nil {
		return err
	}
	if err := ln.Extensions.checkUnique(); err != nil {
		return err
	}
	for _, e := range ln.Extensions {
		if !caps.SupportsExtension(e.Type) {
			return fmt.Errorf("extension 0x%04x not in capabilities", uint16(e.Type))
		}
	}
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		if !v.IgnoreLifetime {
			now := v.Now.Unix()
			if now < 0 || !ln.Lifetime.Contains(uint64(now)) {
				return fmt.Errorf("lifetime [%d, %d] does not contain %d", ln.Lifetime.NotBefore, ln.Lifetime.NotAfter, now)
			}
		}
	case LeafNodeSourceUpdate, LeafNodeSourceCommit:
	default:
		return fmt.Errorf("leaf node source %d", ln.Source)
	}
	return ln.VerifySignature(s, v.GroupID, l)
}

// ValidateLeafNode checks a LeafNode that is to take leaf l of the tree, as
// received in a KeyPackage (Add), an Update or an UpdatePath (RFC 9420,
// Section 7.3). source is the source the message requires. The keys must
// be unique among the other members, and the credential type must be
// mutually supported with every other member.
func (t *RatchetTree) ValidateLeafNode(ln *LeafNode, l LeafIndex, source LeafNodeSource, v *LeafValidation) error {
	fail := func(err error) error { return fmt.Errorf("%w: leaf %d: %w", ErrInvalidLeafNode, l, err) }
	if ln.Source != source {
		return fail(fmt.Errorf("source %v, want %v", ln.Source, source))
	}
	if err := checkLeafContent(t.suite, ln, l, v); err != nil {
		return fail(err)
	}
	if x, ok := t.findEncryptionKey(ln.EncryptionKey); ok && x != l.NodeIndex() {
		return fail(fmt.Errorf("encryption key already used at node %d: %w", x, ErrDuplicateKey))
	}
	if o, ok := t.FindSignatureKey(ln.SignatureKey); ok && o != l {
		return fail(fmt.Errorf("signature key already used by leaf %d: %w", o, ErrDuplicateKey))
	}
	// RFC 9420, Section 7.3: the credential type must be supported by all
	// members, and this leaf must support every type in use. The counts
	// make this O(credential types); the leaf being replaced at l, if
	// any, is left out of them.
	members, use, support := t.members, t.credUse, t.credSupport
	supports := func(ln *LeafNode, ct CredentialType) int {
		if ln != nil && ln.Capabilities.SupportsCredential(ct) {
			return 1
		}
		return 0
	}
	cur := t.LeafNode(l)
	if cur != nil {
		members--
	}
	if support[ln.Credential.Type]-supports(cur, ln.Credential.Type) != members {
		return fail(fmt.Errorf("credential type %d not supported by every member", ln.Credential.Type))
	}
	for ct, n := range use {
		if cur != nil && cur.Credential.Type == ct {
			n--
		}
		if n > 0 && !ln.Capabilities.SupportsCredential(ct) {
			return fail(fmt.Errorf("credential type %d in use but not supported", ct))
		}
	}
	return nil
}

// ImportRatchetTree decodes a tree received from a peer (a ratchet_tree
// extension) and validates it as a new member must (RFC 9420, Section
// 12.4.3.1): its tree hash equals treeHash, every non-blank parent is
// parent-hash valid, every leaf is valid, unmerged leaves are consistent
// and keys are unique. Errors are *TreeValidationError or wrap ErrDecode.
func ImportRatchetTree(suite *Suite, data, treeHash []byte, v *LeafValidation) (*RatchetTree, error) {
	t, err := UnmarshalRatchetTree(suite, data)
	if err != nil {
		return nil, err
	}
	if err := t.Validate(v); err != nil {
		return nil, err
	}
	if got := t.TreeHash(); !bytes.Equal(got, treeHash) {
		return nil, &TreeValidationError{Node: t.Root(), Kind: ErrTreeHash, Reason: fmt.Sprintf("tree hash %x, want %x", got, treeHash)}
	}
	return t, nil
}

// Validate checks the whole tree as Section 12.4.3.1 requires of a joiner,
// except the comparison with the GroupInfo's tree hash. The cheap structural
// checks run before the signatures.
func (t *RatchetTree) Validate(v *LeafValidation) error {
	w := NodeIndex(t.width())
	encKeys := make(map[string]NodeIndex, w)
	sigKeys := make(map[string]LeafIndex, t.leaves)
	var credTypes []CredentialType
	for x := NodeIndex(0); x < w; x++ {
		n := t.get(x)
		if n.blank() {
			continue
		}
		key := t.encryptionKey(x)
		if o, dup := encKeys[string(key)]; dup {
			return &TreeValidationError{Node: x, Kind: ErrDuplicateKey, Reason: fmt.Sprintf("encryption key also at node %d", o)}
		}
		encKeys[string(key)] = x
		if n.leaf != nil {
			if o, dup := sigKeys[string(n.leaf.SignatureKey)]; dup {
				return &TreeValidationError{Node: x, Kind: ErrDuplicateKey, Reason: fmt.Sprintf("signature key also at leaf %d", o)}
			}
			sigKeys[string(n.leaf.SignatureKey)] = x.LeafIndex()
			if !slices.Contains(credTypes, n.leaf.Credential.Type) {
				credTypes = append(credTypes, n.leaf.Credential.Type)
			}
			continue
		}
		if err := t.suite.ValidateHPKEPublicKey(key); err != nil {
			return &TreeValidationError{Node: x, Kind: ErrInvalidKey, Reason: "parent encryption key", Cause: err}
		}
		if err := t.checkUnmerged(x); err != nil {
			return err
		}
	}
	for x := NodeIndex(1); x < w; x += 2 {
		if t.get(x).parent != nil {
			if err := t.verifyParentHash(x); err != nil {
				return err
			}
		}
	}
	for l := LeafIndex(0); uint32(l) < t.leaves; l++ {
		ln := t.LeafNode(l)
		if ln == nil {
			continue
		}
		err := checkLeafContent(t.suite, ln, l, v)
		for _, ct := range credTypes {
			if err == nil && !ln.Capabilities.SupportsCredential(ct) {
				err = fmt.Errorf("credential type %d in use but not supported", ct)
			}
		}
		if err != nil {
			return &TreeValidationError{Node: l.NodeIndex(), Kind: ErrInvalidLeafNode, Reason: "leaf node", Cause: err}
		}
	}
	return nil
}

// checkUnmerged checks the unmerged_leaves of parent x (RFC 9420, Sections
// 7.1 and 12.4.3.1): strictly increasing, each a non-blank leaf below x, and
// listed by every non-blank parent between that leaf and x.
func (t *RatchetTree) checkUnmerged(x NodeIndex) error {
	p := t.get(x).parent
	fail := func(format string, args ...any) error {
		return &TreeValidationError{Node: x, Kind: ErrUnmergedLeaves, Reason: fmt.Sprintf(format, args...)}
	}
	for i, l := range p.UnmergedLeaves {
		if i > 0 && p.UnmergedLeaves[i-1] >= l {
			return fail("unmerged leaves not strictly increasing")
		}
		if uint32(l) >= t.leaves || !isAncestor(x, l.NodeIndex()) {
			return fail("unmerged leaf %d is not below the node", l)
		}
		if t.LeafNode(l) == nil {
			return fail("unmerged leaf %d is blank", l)
		}
		for y := parent(l.NodeIndex(), t.leaves); y != x; y = parent(y, t.leaves) {
			if q := t.get(y).parent; q != nil {
				if _, ok := slices.BinarySearch(q.UnmergedLeaves, l); !ok {
					return fail("unmerged leaf %d missing at intermediate node %d", l, y)
				}
			}
		}
	}
	return nil
}
