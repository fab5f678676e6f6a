package mls

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// seedRand is a deterministic io.Reader for tests: a counter hashed with a
// seed, so that every run of a test sees the same "random" values.
type seedRand struct {
	seed uint64
	ctr  uint64
	buf  []byte
}

func (r *seedRand) Read(p []byte) (int, error) {
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			var in [16]byte
			binary.BigEndian.PutUint64(in[:8], r.seed)
			binary.BigEndian.PutUint64(in[8:], r.ctr)
			r.ctr++
			r.buf = s.Hash(in[:])
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

// testCapabilities lists everything this package supports.
func testCapabilities(cs CipherSuite) Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolVersionMLS10},
		CipherSuites: []CipherSuite{cs},
		Credentials:  []CredentialType{CredentialTypeBasic},
	}
}

// testMember is one member's private state in a test group.
type testMember struct {
	sig     *SigningKey
	keys    map[NodeIndex]*HPKEPrivateKey
	leafKey *HPKEPrivateKey // until the leaf is placed
}

// newTestLeaf returns a KeyPackage-style leaf and its member state.
func newTestLeaf(t testing.TB, s *Suite, rand *seedRand, name string) (*LeafNode, *testMember) {
	t.Helper()
	sig, err := s.GenerateSigningKey(rand)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := s.GenerateHPKEKeyPair(rand)
	if err != nil {
		t.Fatal(err)
	}
	ln := &LeafNode{
		EncryptionKey: hk.PublicKey(),
		SignatureKey:  sig.PublicKey(),
		Credential:    NewBasicCredential([]byte(name)),
		Capabilities:  testCapabilities(s.ID()),
		Source:        LeafNodeSourceKeyPackage,
		Lifetime:      Lifetime{NotBefore: 0, NotAfter: 1 << 62},
	}
	if err := ln.Sign(sig, nil, 0); err != nil {
		t.Fatal(err)
	}
	return ln, &testMember{sig: sig, keys: map[NodeIndex]*HPKEPrivateKey{}, leafKey: hk}
}

// fullTree is a synthetic group of n members in leaves 0..n-1 whose every
// parent with a member below it is set, with valid parent-hash chains (each
// parent was "set" by a commit from its leftmost leaf), signed leaves, and
// all node private keys known, built in O(n) without running n commits.
type fullTree struct {
	suite   *Suite
	groupID []byte
	tree    *RatchetTree
	sigs    []*SigningKey
	keys    map[NodeIndex]*HPKEPrivateKey
	data    []byte // ratchet_tree encoding
}

func buildFullTree(t testing.TB, cs CipherSuite, n int) *fullTree {
	t.Helper()
	s, err := cs.Suite()
	if err != nil {
		t.Fatal(err)
	}
	ft := &fullTree{suite: s, groupID: []byte("bench-group"), keys: make(map[NodeIndex]*HPKEPrivateKey)}
	leaves := uint32(1)
	for leaves < uint32(n) {
		leaves *= 2
	}
	tr := &RatchetTree{suite: s, leaves: leaves, nodes: make([]treeNode, nodeWidth(leaves))}
	tr.indexAll()
	ft.tree = tr
	ft.sigs = make([]*SigningKey, n)
	key := func(x NodeIndex) *HPKEPrivateKey {
		var seed [8]byte
		binary.BigEndian.PutUint64(seed[:], uint64(x)+1<<40)
		k, err := s.DeriveKeyPair(seed[:])
		if err != nil {
			t.Fatal(err)
		}
		ft.keys[x] = k
		return k
	}
	var build func(x NodeIndex, ph []byte)
	build = func(x NodeIndex, ph []byte) {
		lo, _ := subtreeLeaves(x)
		if uint32(lo) >= uint32(n) {
			return // no member below: stays blank
		}
		if x.IsLeaf() {
			l := x.LeafIndex()
			sig, err := s.GenerateSigningKey(&seedRand{seed: uint64(l)})
			if err != nil {
				t.Fatal(err)
			}
			ft.sigs[l] = sig
			ln := &LeafNode{
				EncryptionKey: key(x).PublicKey(),
				SignatureKey:  sig.PublicKey(),
				Credential:    NewBasicCredential([]byte(fmt.Sprintf("member %d", l))),
				Capabilities:  testCapabilities(cs),
				Source:        LeafNodeSourceUpdate,
			}
			if ph != nil {
				ln.Source, ln.ParentHash = LeafNodeSourceCommit, ph
			}
			if err := ln.Sign(sig, ft.groupID, l); err != nil {
				t.Fatal(err)
			}
			tr.setLeaf(l, ln)
			return
		}
		p := &ParentNode{EncryptionKey: key(x).PublicKey(), ParentHash: ph}
		tr.setParent(x, p)
		build(right(x), nil)
		build(left(x), tr.parentHash(p, tr.treeHash(right(x))))
	}
	build(tr.Root(), []byte{})
	tr.TreeHash()
	ft.data, err = tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return ft
}

// checkBlankCounts compares the cached blank-leaf and parent counts with a
// count from scratch.
func checkBlankCounts(t testing.TB, tr *RatchetTree) {
	t.Helper()
	var count func(x NodeIndex) (uint32, uint32)
	count = func(x NodeIndex) (blanks, parents uint32) {
		if x.IsLeaf() {
			if tr.LeafNode(x.LeafIndex()) == nil {
				blanks = 1
			}
		} else {
			lb, lp := count(left(x))
			rb, rp := count(right(x))
			blanks, parents = lb+rb, lp+rp
			if tr.ParentNode(x) != nil {
				parents++
			}
		}
		if n := tr.get(x); n.blankLeaves != blanks || n.parents != parents {
			t.Fatalf("node %d: cached %d blank leaves and %d parents, counted %d and %d", x, n.blankLeaves, n.parents, blanks, parents)
		}
		return blanks, parents
	}
	count(tr.Root())
}
