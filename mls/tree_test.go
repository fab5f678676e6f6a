package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

const testSuite = MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

func TestFullTreeBuilderValidates(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8, 13} {
		ft := buildFullTree(t, testSuite, n)
		v := &LeafValidation{GroupID: ft.groupID}
		if _, err := ImportRatchetTree(ft.suite, ft.data, ft.tree.TreeHash(), v); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}

// reencode decodes data, lets edit change the tree's nodes in place, and
// returns the new encoding and tree hash.
func reencode(t *testing.T, s *Suite, data []byte, edit func(tr *RatchetTree)) ([]byte, []byte) {
	t.Helper()
	tr, err := UnmarshalRatchetTree(s, data)
	if err != nil {
		t.Fatal(err)
	}
	edit(tr)
	for x := range tr.nodes {
		tr.nodes[x].hash = nil
	}
	enc, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return enc, tr.TreeHash()
}

func TestImportRejectsBadTrees(t *testing.T) {
	ft := buildFullTree(t, testSuite, 6)
	s := ft.suite
	v := &LeafValidation{GroupID: ft.groupID}
	cases := []struct {
		name string
		edit func(tr *RatchetTree)
		kind error
		node NodeIndex
	}{
		{"parent hash of a parent", func(tr *RatchetTree) {
			p := tr.nodes[1].parent.Clone()
			p.ParentHash[0] ^= 1
			tr.nodes[1].parent = p
		}, ErrParentHash, 1}, // leaf 0's link to node 1 covers node 1's parent_hash
		{"parent hash of a leaf", func(tr *RatchetTree) {
			ln := tr.nodes[4].leaf.Clone()
			ln.ParentHash[0] ^= 1
			tr.nodes[4].leaf = ln
		}, ErrParentHash, 3}, // node 3's link covers the tree hash of its right subtree
		{"parent key replaced", func(tr *RatchetTree) {
			p := tr.nodes[5].parent.Clone()
			k, _ := s.DeriveKeyPair([]byte("fresh"))
			p.EncryptionKey = k.PublicKey()
			tr.nodes[5].parent = p
		}, ErrParentHash, 3},
		{"leaf signature", func(tr *RatchetTree) {
			// Leaf 0 is the one leaf whose content no parent hash covers.
			ln := tr.nodes[0].leaf.Clone()
			ln.Signature[0] ^= 1
			tr.nodes[0].leaf = ln
		}, ErrInvalidSignature, 0},
		{"leaf extension not in capabilities", func(tr *RatchetTree) {
			ln := tr.nodes[0].leaf.Clone()
			ln.Extensions = Extensions{{Type: 0xf0f0}}
			tr.nodes[0].leaf = ln
		}, ErrInvalidLeafNode, 0},
		{"parent key not a curve point", func(tr *RatchetTree) {
			p := tr.nodes[1].parent.Clone()
			p.EncryptionKey = []byte{1, 2, 3}
			tr.nodes[1].parent = p
		}, ErrInvalidKey, 1},
		{"duplicate encryption key", func(tr *RatchetTree) {
			p := tr.nodes[1].parent.Clone()
			p.EncryptionKey = tr.nodes[0].leaf.EncryptionKey
			tr.nodes[1].parent = p
		}, ErrDuplicateKey, 1},
		{"duplicate signature key", func(tr *RatchetTree) {
			ln := tr.nodes[2].leaf.Clone()
			ln.SignatureKey = tr.nodes[0].leaf.SignatureKey
			tr.nodes[2].leaf = ln
		}, ErrDuplicateKey, 2},
		{"unmerged leaf blank", func(tr *RatchetTree) {
			p := tr.nodes[11].parent.Clone()
			p.UnmergedLeaves = []LeafIndex{6}
			tr.nodes[11].parent = p
		}, ErrUnmergedLeaves, 11},
		{"unmerged leaf not below", func(tr *RatchetTree) {
			p := tr.nodes[1].parent.Clone()
			p.UnmergedLeaves = []LeafIndex{3}
			tr.nodes[1].parent = p
		}, ErrUnmergedLeaves, 1},
		{"unmerged leaves unsorted", func(tr *RatchetTree) {
			p := tr.nodes[7].parent.Clone()
			p.UnmergedLeaves = []LeafIndex{2, 1}
			tr.nodes[7].parent = p
		}, ErrUnmergedLeaves, 7},
		{"unmerged leaf missing in between", func(tr *RatchetTree) {
			p := tr.nodes[7].parent.Clone()
			p.UnmergedLeaves = []LeafIndex{1}
			tr.nodes[7].parent = p
		}, ErrUnmergedLeaves, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, th := reencode(t, s, ft.data, tc.edit)
			_, err := ImportRatchetTree(s, data, th, v)
			te, ok := asTreeError(err)
			if !ok || !errors.Is(err, ErrInvalidTree) || !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want a TreeValidationError matching %v", err, tc.kind)
			}
			if te.Node != tc.node {
				t.Fatalf("error names node %d, want %d: %v", te.Node, tc.node, err)
			}
		})
	}
	t.Run("tree hash", func(t *testing.T) {
		th := slices.Clone(ft.tree.TreeHash())
		th[0] ^= 1
		if _, err := ImportRatchetTree(s, ft.data, th, v); !errors.Is(err, ErrTreeHash) {
			t.Fatalf("got %v, want ErrTreeHash", err)
		}
	})
	t.Run("wrong group", func(t *testing.T) {
		bad := &LeafValidation{GroupID: []byte("other")}
		if _, err := ImportRatchetTree(s, ft.data, ft.tree.TreeHash(), bad); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("got %v, want ErrInvalidSignature", err)
		}
	})
	t.Run("required capabilities", func(t *testing.T) {
		req := &LeafValidation{GroupID: ft.groupID, RequiredCapabilities: &RequiredCapabilities{ExtensionTypes: []ExtensionType{0xf000}}}
		if _, err := ImportRatchetTree(s, ft.data, ft.tree.TreeHash(), req); !errors.Is(err, ErrInvalidLeafNode) {
			t.Fatalf("got %v, want ErrInvalidLeafNode", err)
		}
	})
	t.Run("trailing blank", func(t *testing.T) {
		data := slices.Clone(ft.data)
		// Append one blank entry, growing the one-byte vector length
		// header of a small tree is not possible, so build it by hand.
		tr, _ := UnmarshalRatchetTree(s, data)
		body, _ := tr.MarshalBinary()
		if _, n, _ := DecodeVarint(body); n > 0 {
			inner := append(slices.Clone(body[n:]), 0)
			enc := appendVarint(nil, uint32(len(inner)))
			enc = append(enc, inner...)
			if _, err := UnmarshalRatchetTree(s, enc); !errors.Is(err, ErrDecode) {
				t.Fatalf("trailing blank accepted: %v", err)
			}
		}
	})
	t.Run("leaf at parent position", func(t *testing.T) {
		// optional<Node>: present, leaf, at position 1.
		tr := NewRatchetTree(s, ft.tree.LeafNode(0))
		one, _ := tr.MarshalBinary()
		_, n, _ := DecodeVarint(one)
		entry := one[n:]
		inner := append(append([]byte{0}, entry...), entry...)
		enc := append(appendVarint(nil, uint32(len(inner))), inner...)
		if _, err := UnmarshalRatchetTree(s, enc); !errors.Is(err, ErrDecode) {
			t.Fatalf("leaf at odd position accepted: %v", err)
		}
	})
}

func TestLeafLifetime(t *testing.T) {
	s, _ := testSuite.Suite()
	ln, _ := newTestLeaf(t, s, &seedRand{seed: 1}, "a")
	ln2 := ln.Clone()
	ln2.Lifetime = Lifetime{NotBefore: 100, NotAfter: 200}
	// The signature no longer matches, but lifetime is checked first.
	tr := NewRatchetTree(s, ln)
	for _, tc := range []struct {
		now    int64
		ignore bool
		ok     bool
	}{{150, false, true}, {99, false, false}, {201, false, false}, {201, true, true}} {
		v := &LeafValidation{Now: time.Unix(tc.now, 0), IgnoreLifetime: tc.ignore}
		err := checkLeafContent(s, ln2, 0, v)
		lifetimeErr := err != nil && !errors.Is(err, ErrInvalidSignature)
		if lifetimeErr == tc.ok {
			t.Errorf("now=%d ignore=%v: %v", tc.now, tc.ignore, err)
		}
	}
	if err := tr.ValidateLeafNode(ln, 1, LeafNodeSourceKeyPackage, &LeafValidation{Now: time.Unix(5, 0)}); !errors.Is(err, ErrDuplicateKey) {
		t.Fatalf("same leaf at another position: %v, want ErrDuplicateKey", err)
	}
	if err := tr.ValidateLeafNode(ln, 1, LeafNodeSourceUpdate, &LeafValidation{Now: time.Unix(5, 0)}); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("wrong source: %v", err)
	}
}

func TestAddRemoveTruncate(t *testing.T) {
	s, _ := testSuite.Suite()
	r := &seedRand{seed: 2}
	ln0, _ := newTestLeaf(t, s, r, "0")
	tr := NewRatchetTree(s, ln0)
	var leaves []*LeafNode
	for i := 1; i <= 4; i++ {
		ln, _ := newTestLeaf(t, s, r, fmt.Sprint(i))
		leaves = append(leaves, ln)
		if got := tr.AddLeaf(ln); got != LeafIndex(i) {
			t.Fatalf("add %d placed at %d", i, got)
		}
	}
	if tr.LeafCount() != 8 {
		t.Fatalf("leaf count %d, want 8", tr.LeafCount())
	}
	if err := tr.RemoveLeaf(2); err != nil {
		t.Fatal(err)
	}
	ln, _ := newTestLeaf(t, s, r, "5")
	if got := tr.AddLeaf(ln); got != 2 {
		t.Fatalf("add after remove placed at %d, want the leftmost blank 2", got)
	}
	if err := tr.RemoveLeaf(4); err != nil {
		t.Fatal(err)
	}
	if tr.LeafCount() != 4 {
		t.Fatalf("after removing the last leaf: %d leaves, want 4", tr.LeafCount())
	}
	if err := tr.RemoveLeaf(4); !errors.Is(err, ErrBlankLeaf) {
		t.Fatalf("removing a leaf out of range: %v", err)
	}
	for _, l := range []LeafIndex{3, 2, 1} {
		if err := tr.RemoveLeaf(l); err != nil {
			t.Fatal(err)
		}
	}
	if tr.LeafCount() != 1 {
		t.Fatalf("one member left: %d leaves", tr.LeafCount())
	}
	checkBlankCounts(t, tr)
	// The cached hash equals a from-scratch hash.
	enc, _ := tr.MarshalBinary()
	fresh, err := UnmarshalRatchetTree(s, enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh.TreeHash(), tr.TreeHash()) {
		t.Fatal("cached tree hash differs from a fresh computation")
	}
}

// FuzzRatchetTree decodes arbitrary ratchet_tree extensions: decoding,
// hashing, resolving and validating never panic, and a tree that decodes
// re-encodes byte for byte.
func FuzzRatchetTree(f *testing.F) {
	for _, n := range []int{1, 2, 3, 5} {
		f.Add(buildFullTree(f, testSuite, n).data)
	}
	s, _ := testSuite.Suite()
	// A tree with unmerged leaves and blanks.
	ft := buildFullTree(f, testSuite, 4)
	ln, _ := newTestLeaf(f, s, &seedRand{seed: 77}, "late")
	ft.tree.AddLeaf(ln)
	_ = ft.tree.RemoveLeaf(1)
	enc, _ := ft.tree.MarshalBinary()
	f.Add(enc)
	fuzzExtraLeaf, _ := newTestLeaf(f, s, &seedRand{seed: 78}, "extra")
	fuzzExtraLeaf2, _ := newTestLeaf(f, s, &seedRand{seed: 79}, "extra2")
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := UnmarshalRatchetTree(s, data)
		if err != nil {
			return
		}
		out, err := tr.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, out)
		}
		th := tr.TreeHash()
		for x := range tr.width() {
			tr.Resolution(NodeIndex(x))
		}
		err = tr.Validate(&LeafValidation{GroupID: []byte("g"), IgnoreLifetime: true})
		if err != nil {
			if _, ok := asTreeError(err); !ok {
				t.Fatalf("validation error is not a TreeValidationError: %v", err)
			}
		}
		// Operations on a decoded tree do not panic either, and leave the
		// tree they forked from intact.
		checkBlankCounts(t, tr)
		fork := tr.Fork()
		for l := LeafIndex(0); uint32(l) < tr.LeafCount(); l++ {
			if tr.LeafNode(l) != nil {
				_ = fork.RemoveLeaf(l)
				break
			}
		}
		fork.AddLeaf(fuzzExtraLeaf)
		fork.AddLeaf(fuzzExtraLeaf2)
		checkBlankCounts(t, fork)
		fork.TreeHash()
		if !bytes.Equal(tr.TreeHash(), th) {
			t.Fatal("fork changed its base")
		}
	})
}

func TestCredentialSupportAcrossMembers(t *testing.T) {
	ft := buildFullTree(t, testSuite, 3)
	s := ft.suite
	v := &LeafValidation{GroupID: ft.groupID, IgnoreLifetime: true}
	mk := func(ct CredentialType, supported ...CredentialType) *LeafNode {
		ln, m := newTestLeaf(t, s, &seedRand{seed: uint64(100 + len(supported))}, "x")
		ln.Credential = Credential{Type: ct, Identity: []byte("x")}
		if ct == CredentialTypeX509 {
			ln.Credential = Credential{Type: ct, Certificates: []Certificate{{Data: []byte{1}}}}
		}
		ln.Capabilities.Credentials = supported
		if err := ln.Sign(m.sig, nil, 0); err != nil {
			t.Fatal(err)
		}
		return ln
	}
	if err := ft.tree.ValidateLeafNode(mk(CredentialTypeBasic, CredentialTypeBasic, CredentialTypeX509), 3, LeafNodeSourceKeyPackage, v); err != nil {
		t.Fatalf("compatible leaf rejected: %v", err)
	}
	if err := ft.tree.ValidateLeafNode(mk(CredentialTypeX509, CredentialTypeBasic, CredentialTypeX509), 3, LeafNodeSourceKeyPackage, v); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("x509 leaf accepted though members support only basic: %v", err)
	}
	if err := ft.tree.ValidateLeafNode(mk(CredentialTypeX509, CredentialTypeX509), 3, LeafNodeSourceKeyPackage, v); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("leaf not supporting the basic credentials in use accepted: %v", err)
	}
	// In a one-member tree, the member's own leaf does not count against
	// its replacement.
	one := NewRatchetTree(s, ft.tree.LeafNode(0))
	ln := mk(CredentialTypeX509, CredentialTypeX509)
	ln.Source = LeafNodeSourceUpdate
	if err := ln.Sign(ft.sigs[0], ft.groupID, 0); err != nil {
		t.Fatal(err)
	}
	ln.SignatureKey = ft.sigs[0].PublicKey()
	if err := ln.Sign(ft.sigs[0], ft.groupID, 0); err != nil {
		t.Fatal(err)
	}
	if err := one.ValidateLeafNode(ln, 0, LeafNodeSourceUpdate, v); err != nil {
		t.Fatalf("sole member switching credential type rejected: %v", err)
	}
}

// asTreeError extracts a *TreeValidationError from err.
func asTreeError(err error) (*TreeValidationError, bool) {
	var te *TreeValidationError
	ok := errors.As(err, &te)
	return te, ok
}
