package mlsvectors

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	. "grove/mls"
	"grove/mls/internal/treemath"
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

// applyTreeOp applies the tree change of an Add, Update or Remove proposal
// (RFC 9420, Section 12.1) sent by sender.
func applyTreeOp(t *RatchetTree, p *Proposal, sender LeafIndex) error {
	switch {
	case p.Add != nil:
		t.AddLeaf(&p.Add.KeyPackage.LeafNode)
		return nil
	case p.Update != nil:
		return t.UpdateLeaf(sender, &p.Update.LeafNode)
	case p.Remove != nil:
		return t.RemoveLeaf(p.Remove.Removed)
	}
	return fmt.Errorf("proposal of type %v does not change the tree", p.Type)
}

func verifyTreeOperationsVectors(data []byte) ([]error, error) {
	return runCases(data, func(v *treeOperationsVector) error {
		s, err := v.CipherSuite.Suite()
		if err != nil {
			return err
		}
		var prop Proposal
		if err := prop.UnmarshalBinary(v.Proposal); err != nil {
			return err
		}
		check := func(name string, t *RatchetTree) error {
			if err := applyTreeOp(t, &prop, LeafIndex(v.ProposalSender)); err != nil {
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
		if len(v.Resolutions) != int(treemath.NodeWidth(t.LeafCount())) || len(v.TreeHashes) != int(treemath.NodeWidth(t.LeafCount())) {
			return fmt.Errorf("%d resolutions and %d tree hashes for %d nodes", len(v.Resolutions), len(v.TreeHashes), treemath.NodeWidth(t.LeafCount()))
		}
		var errs []error
		for x := range treemath.NodeWidth(t.LeafCount()) {
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
		gc := GroupContext{Version: ProtocolVersionMLS10, CipherSuite: cs, GroupID: groupID, Epoch: epoch,
			TreeHash: treeHash, ConfirmedTranscriptHash: confirmed}
		return gc.MarshalBinary()
	}
}

// lowestNode returns the node of lowest level among keys, which is where
// a receiver decrypted the path secret.
func lowestNode(keys map[NodeIndex][]byte) NodeIndex {
	best, first := NodeIndex(0), true
	for x := range keys {
		if first || treemath.Level(uint32(x)) < treemath.Level(uint32(best)) {
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
				if uint32(x) >= treemath.NodeWidth(tree.LeafCount()) || tree.IsBlank(x) || !bytes.Equal(nodeEncryptionKey(tree, x), k.PublicKey()) {
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
			for l := LeafIndex(0); uint32(l) < tree.LeafCount(); l++ {
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

// nodeEncryptionKey is the HPKE public key of the non-blank node x.
func nodeEncryptionKey(t *RatchetTree, x NodeIndex) []byte {
	if x.IsLeaf() {
		return t.LeafNode(x.LeafIndex()).EncryptionKey
	}
	return t.ParentNode(x).EncryptionKey
}
