package mls

import (
	"bytes"
	"errors"
	"testing"
)

// A joiner given the tree from NextRatchetTree, with the Welcome's
// GroupInfo lacking the ratchet_tree extension, reaches the committer's
// epoch; the encoding is the tree the committer merges.
func TestStagedCommitNextRatchetTree(t *testing.T) {
	tg := newTestGroup(t, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, 7, "alice")
	bob := newTestKeyPackage(t, tg.cs, "bob", tg.rand)
	sc, err := tg.members["alice"].Commit(&CommitOptions{
		Proposals:       []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: bob.KeyPackage}}},
		OmitRatchetTree: true, Rand: tg.rand, Now: testNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := sc.NextRatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinFromWelcome(&JoinParams{Welcome: sc.Welcome, KeyPackage: bob, Now: testNow}); err == nil {
		t.Fatal("join without the tree succeeded")
	}
	j, err := JoinFromWelcome(&JoinParams{Welcome: sc.Welcome, KeyPackage: bob, RatchetTree: tree, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	a, err := sc.Merge()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := a.Tree().MarshalBinary()
	if !bytes.Equal(tree, want) || !bytes.Equal(j.EpochAuthenticator(), a.EpochAuthenticator()) {
		t.Fatal("tree or epoch differ")
	}
	sc2, err := a.Commit(&CommitOptions{Rand: tg.rand, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	sc2.Discard()
	if _, err := sc2.NextRatchetTree(); !errors.Is(err, ErrAlreadyMerged) {
		t.Fatalf("discarded: %v", err)
	}
}
