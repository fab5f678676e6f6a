package mls

import (
	"bytes"
	"testing"
)

// A branch with new extensions, a forced path and the tree out of band:
// the joiner needs the tree, reaches the creator's epoch, and the new
// group carries the requested extensions.
func TestBranchOptions(t *testing.T) {
	tg := newTestGroup(t, testSuite, 8, "alice")
	tg.add("alice", "bob", "carol")
	bobKP := newTestKeyPackage(t, testSuite, "bob", tg.rand)
	carolKP := newTestKeyPackage(t, testSuite, "carol", tg.rand)
	own := newTestKeyPackage(t, testSuite, "alice", tg.rand)
	exts := Extensions{{Type: ExtensionExternalSenders, Data: []byte{0}}}
	ng, welcome, err := tg.members["alice"].Branch(&SuccessorParams{
		Own: own, KeyPackages: []*KeyPackage{&bobKP.KeyPackage, &carolKP.KeyPackage}, GroupID: []byte("sub"),
		Extensions: exts, ForcePath: true, OmitRatchetTree: true, Now: testNow, Rand: tg.rand,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !ng.GroupContext().Extensions.Equal(exts) {
		t.Fatalf("extensions %v, want %v", ng.GroupContext().Extensions, exts)
	}
	if _, err := JoinFromWelcome(&JoinParams{Welcome: welcome, KeyPackage: bobKP, Now: testNow, Resumption: tg.members["bob"]}); err == nil {
		t.Fatal("joined without the ratchet tree it was told to omit")
	}
	tree, err := ng.Tree().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	j, err := JoinFromWelcome(&JoinParams{Welcome: welcome, KeyPackage: carolKP, RatchetTree: tree, Now: testNow, Resumption: tg.members["carol"]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(j.EpochAuthenticator(), ng.EpochAuthenticator()) {
		t.Fatal("branch disagrees")
	}
	// The forced path gave the joiner the path secret of the common
	// ancestor: it holds a parent node key besides its leaf's.
	if len(j.nodeKeys) < 2 {
		t.Fatalf("joiner holds %d node keys; the forced path should give it a parent's", len(j.nodeKeys))
	}
}
