package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// Verifiers for the tree-operations, tree-validation and treekem vectors
// (test-vectors.md, "Tree Operations", "Tree Validation", "TreeKEM").

// --- tree-operations ---

type treeOperationsVector struct {
	CipherSuite    CipherSuite `json:"cipher_suite"`
	TreeBefore     hexBytes    `json:"tree_before"`
	Proposal       hexBytes    `json:"proposal"`
	ProposalSender uint32      `json:"proposal_sender"`
	TreeHashBefore hexBytes    `json:"tree_hash_before"`
	TreeAfter      hexBytes    `json:"tree_after"`
	TreeHashAfter  hexBytes    `json:"tree_hash_after"`
}

// treeOpsProposal is the part of a Proposal (RFC 9420, Section 12.1) that
// changes the tree: the leaf of an Add's KeyPackage or of an Update, or the
// leaf a Remove names. The full Proposal type belongs to the group layer.
type treeOpsProposal struct {
	typ     ProposalType
	leaf    *LeafNode
	removed LeafIndex
}

func (p *treeOpsProposal) unmarshal(s *cryptobyte.String) bool {
	var t uint16
	if !s.ReadUint16(&t) {
		return false
	}
	p.typ = ProposalType(t)
	switch p.typ {
	case ProposalTypeAdd:
		// KeyPackage: version, cipher_suite, init_key<V>, leaf_node,
		// extensions<V>, signature<V> (Section 10).
		var version, suite uint16
		var initKey, sig []byte
		var exts Extensions
		p.leaf = new(LeafNode)
		return s.ReadUint16(&version) && s.ReadUint16(&suite) && readVarBytes(s, &initKey) &&
			p.leaf.unmarshal(s) && exts.unmarshal(s) && readVarBytes(s, &sig)
	case ProposalTypeUpdate:
		p.leaf = new(LeafNode)
		return p.leaf.unmarshal(s)
	case ProposalTypeRemove:
		var r uint32
		if !s.ReadUint32(&r) {
			return false
		}
		p.removed = LeafIndex(r)
		return true
	}
	return false
}

func (p *treeOpsProposal) apply(t *RatchetTree, sender LeafIndex) error {
	switch p.typ {
	case ProposalTypeAdd:
		t.AddLeaf(p.leaf)
		return nil
	case ProposalTypeUpdate:
		return t.UpdateLeaf(sender, p.leaf)
	default:
		return t.RemoveLeaf(p.removed)
	}
}

func verifyTreeOperationsVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *treeOperationsVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		var prop treeOpsProposal
		if err := unmarshalAll("Proposal", v.Proposal, prop.unmarshal); err != nil {
			return err
		}
		check := func(name string, t *RatchetTree) error {
			if err := prop.apply(t, LeafIndex(v.ProposalSender)); err != nil {
				return err
			}
			enc, err := t.MarshalBinary()
			if err != nil {
				return err
			}
			return errors.Join(expectEqual(name+": tree_after", enc, v.TreeAfter),
				expectEqual(name+": tree_hash_after", t.TreeHash(), v.TreeHashAfter))
		}
		tree, err := UnmarshalRatchetTree(s, v.TreeBefore)
		if err != nil {
			return err
		}
		if err := expectEqual("tree_hash_before", tree.TreeHash(), v.TreeHashBefore); err != nil {
			return err
		}
		// Apply the proposal to a fork (leaving the tree as it was), then
		// to the tree itself, then flatten the fork.
		fork := tree.Fork()
		errs := []error{check("fork", fork)}
		enc, err := tree.MarshalBinary()
		errs = append(errs, err, expectEqual("tree unchanged by its fork", enc, v.TreeBefore))
		fresh, err := UnmarshalRatchetTree(s, v.TreeBefore)
		if err != nil {
			return err
		}
		errs = append(errs, check("tree", fresh))
		fork.Flatten()
		enc, err = fork.MarshalBinary()
		errs = append(errs, err, expectEqual("flattened fork", enc, v.TreeAfter),
			expectEqual("flattened fork tree hash", fork.TreeHash(), v.TreeHashAfter))
		return errors.Join(errs...)
	})
}

// --- tree-validation ---

type treeValidationVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	Tree        hexBytes    `json:"tree"`
	GroupID     hexBytes    `json:"group_id"`
	Resolutions [][]uint32  `json:"resolutions"`
	TreeHashes  []hexBytes  `json:"tree_hashes"`
}

func verifyTreeValidationVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *treeValidationVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		t, err := UnmarshalRatchetTree(s, v.Tree)
		if err != nil {
			return err
		}
		if len(v.Resolutions) != int(t.width()) || len(v.TreeHashes) != int(t.width()) {
			return fmt.Errorf("%d resolutions and %d tree hashes for %d nodes", len(v.Resolutions), len(v.TreeHashes), t.width())
		}
		var errs []error
		for x := range t.width() {
			got := t.Resolution(NodeIndex(x))
			want := make([]NodeIndex, len(v.Resolutions[x]))
			for i, r := range v.Resolutions[x] {
				want[i] = NodeIndex(r)
			}
			if !slices.Equal(got, want) {
				errs = append(errs, fmt.Errorf("resolution of node %d: got %v, want %v", x, got, want))
			}
			errs = append(errs, expectEqual(fmt.Sprintf("tree hash of node %d", x), t.NodeTreeHash(NodeIndex(x)), v.TreeHashes[x]))
		}
		val := &LeafValidation{GroupID: v.GroupID, IgnoreLifetime: true}
		errs = append(errs, t.Validate(val))
		_, err = ImportRatchetTree(s, v.Tree, v.TreeHashes[t.Root()], val)
		errs = append(errs, err)
		return errors.Join(errs...)
	})
}

// --- treekem ---

type treeKEMVector struct {
	CipherSuite             CipherSuite `json:"cipher_suite"`
	GroupID                 hexBytes    `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	ConfirmedTranscriptHash hexBytes    `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes    `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32     `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// vectorGroupContext encodes the GroupContext of the treekem vectors
// (RFC 9420, Section 8.1) with empty extensions.
func vectorGroupContext(cs CipherSuite, groupID []byte, epoch uint64, confirmed []byte) GroupContextFunc {
	return func(treeHash []byte) ([]byte, error) {
		return marshal(func(b *cryptobyte.Builder) {
			b.AddUint16(uint16(ProtocolVersionMLS10))
			b.AddUint16(uint16(cs))
			addVarBytes(b, groupID)
			b.AddUint64(epoch)
			addVarBytes(b, treeHash)
			addVarBytes(b, confirmed)
			Extensions(nil).marshal(b)
		})
	}
}

// lowestNode returns the node of lowest level among keys, which is where
// a receiver decrypted the path secret.
func lowestNode(keys map[NodeIndex][]byte) NodeIndex {
	best, first := NodeIndex(0), true
	for x := range keys {
		if first || level(x) < level(best) {
			best, first = x, false
		}
	}
	return best
}

func verifyTreeKEMVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *treeKEMVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		tree, err := UnmarshalRatchetTree(s, v.RatchetTree)
		if err != nil {
			return err
		}
		gc := vectorGroupContext(v.CipherSuite, v.GroupID, v.Epoch, v.ConfirmedTranscriptHash)
		val := &LeafValidation{GroupID: v.GroupID, IgnoreLifetime: true}

		// Private state of each member, checked against the public tree.
		privs := make(map[LeafIndex]map[NodeIndex]*HPKEPrivateKey)
		sigs := make(map[LeafIndex]*SigningKey)
		for _, lp := range v.LeavesPrivate {
			l := LeafIndex(lp.Index)
			keys := make(map[NodeIndex]*HPKEPrivateKey)
			k, err := s.ParseHPKEPrivateKey(lp.EncryptionPriv)
			if err != nil {
				return fmt.Errorf("leaf %d: %w", l, err)
			}
			keys[l.NodeIndex()] = k
			for _, ps := range lp.PathSecrets {
				if keys[NodeIndex(ps.Node)], err = s.NodeKeyFromPathSecret(ps.PathSecret); err != nil {
					return fmt.Errorf("leaf %d node %d: %w", l, ps.Node, err)
				}
			}
			for x, k := range keys {
				if uint32(x) >= tree.width() || tree.IsBlank(x) || !bytes.Equal(tree.encryptionKey(x), k.PublicKey()) {
					return fmt.Errorf("leaf %d: private key for node %d does not match the tree", l, x)
				}
			}
			privs[l] = keys
			if sigs[l], err = s.ParseSigningKey(lp.SignaturePriv); err != nil {
				return fmt.Errorf("leaf %d: %w", l, err)
			}
		}

		// process runs path from sender through every other member's state
		// and returns the commit secrets and decrypted path secrets.
		process := func(sender LeafIndex, path *UpdatePath) (map[LeafIndex]*PathSecrets, []byte, error) {
			out := make(map[LeafIndex]*PathSecrets)
			var hashAfter []byte
			for l := LeafIndex(0); uint32(l) < tree.leaves; l++ {
				keys, ok := privs[l]
				if l == sender || tree.LeafNode(l) == nil || !ok {
					continue
				}
				fork := tree.Fork()
				res, err := fork.ProcessUpdatePath(&ProcessPathParams{
					Sender: sender, Path: path, Validation: val, Receiver: l,
					PrivateKey:   func(x NodeIndex) *HPKEPrivateKey { return keys[x] },
					GroupContext: gc,
				})
				if err != nil {
					return nil, nil, fmt.Errorf("receiver %d: %w", l, err)
				}
				out[l] = res
				hashAfter = fork.TreeHash()
			}
			return out, hashAfter, nil
		}

		var errs []error
		for pi, up := range v.UpdatePaths {
			sender := LeafIndex(up.Sender)
			path, err := UnmarshalUpdatePath(up.UpdatePath)
			if err != nil {
				errs = append(errs, fmt.Errorf("update path %d: %w", pi, err))
				continue
			}
			results, hashAfter, err := process(sender, path)
			if err != nil {
				errs = append(errs, fmt.Errorf("update path %d: %w", pi, err))
				continue
			}
			if len(results) == 0 {
				errs = append(errs, fmt.Errorf("update path %d: no receiver", pi))
			}
			for l, r := range results {
				if int(l) >= len(up.PathSecrets) {
					errs = append(errs, fmt.Errorf("update path %d: no path secret for leaf %d", pi, l))
					continue
				}
				errs = append(errs,
					expectEqual(fmt.Sprintf("update path %d: leaf %d: path secret", pi, l), r.Secrets[lowestNode(r.Secrets)], up.PathSecrets[l]),
					expectEqual(fmt.Sprintf("update path %d: leaf %d: commit secret", pi, l), r.CommitSecret, up.CommitSecret))
			}
			if hashAfter != nil {
				errs = append(errs, expectEqual(fmt.Sprintf("update path %d: tree_hash_after", pi), hashAfter, up.TreeHashAfter))
			}

			// A fresh UpdatePath from the same sender must be processed
			// by every other member to the same commit secret.
			sig, ok := sigs[sender]
			if !ok {
				continue
			}
			fork := tree.Fork()
			newPath, mine, err := fork.CreateUpdatePath(&CreatePathParams{
				Leaf: sender, GroupID: v.GroupID, SigningKey: sig, GroupContext: gc, Rand: &vectorRand{ctr: byte(pi)},
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("update path %d: creating: %w", pi, err))
				continue
			}
			// Round-trip through the wire encoding, as a receiver would.
			enc, err := newPath.MarshalBinary()
			if err == nil {
				newPath, err = UnmarshalUpdatePath(enc)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("update path %d: created path encoding: %w", pi, err))
				continue
			}
			results, hashAfter, err = process(sender, newPath)
			if err != nil {
				errs = append(errs, fmt.Errorf("update path %d: processing created path: %w", pi, err))
				continue
			}
			if hashAfter != nil {
				errs = append(errs, expectEqual(fmt.Sprintf("update path %d: created path: tree hash", pi), hashAfter, fork.TreeHash()))
			}
			for l, r := range results {
				errs = append(errs, expectEqual(fmt.Sprintf("update path %d: created path: leaf %d: commit secret", pi, l), r.CommitSecret, mine.CommitSecret))
			}
		}
		return errors.Join(errs...)
	})
}
