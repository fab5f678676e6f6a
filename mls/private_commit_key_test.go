package mls

import (
	"bytes"
	"errors"
	"testing"
)

// TestRejectedPrivateCommitKeepsItsKey: a Commit sent as a PrivateMessage
// that fails validation (it references a proposal the receiver has not
// received yet) does not consume its secret-tree key (issue 18 item 10):
// the receiver's state is unchanged, and once the proposal arrives the
// same Commit is accepted instead of failing as a replay.
func TestRejectedPrivateCommitKeepsItsKey(t *testing.T) {
	tg := newTestGroup(t, testSuite, 90, "alice")
	tg.add("alice", "bob", "carol")
	alice, bob, carol := tg.members["alice"], tg.members["bob"], tg.members["carol"]
	prop, _, err := bob.ProposeUpdate(true, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ProcessMessage(prop, ProcessOptions{Now: testNow}); err != nil {
		t.Fatal(err)
	}
	sc, err := alice.Commit(&CommitOptions{Private: true, Now: testNow, Rand: tg.rand})
	if err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, carol)
	if _, err := carol.ProcessMessage(sc.Message, ProcessOptions{Now: testNow}); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("commit with an unknown proposal: %v", err)
	}
	if !bytes.Equal(before, stateOf(t, carol)) {
		t.Fatal("rejected private commit changed the state (consumed its key)")
	}
	if _, err := carol.ProcessMessage(prop, ProcessOptions{Now: testNow}); err != nil {
		t.Fatal(err)
	}
	pm, err := carol.ProcessMessage(sc.Message, ProcessOptions{Now: testNow})
	if err != nil {
		t.Fatalf("commit after its proposal arrived: %v", err)
	}
	next, err := pm.Commit.Merge()
	if err != nil {
		t.Fatal(err)
	}
	mine, err := sc.Merge()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(next.EpochAuthenticator(), mine.EpochAuthenticator()) {
		t.Fatal("carol and alice disagree on the new epoch")
	}
	// An accepted private commit cannot be processed twice.
	if _, err := carol.ProcessMessage(sc.Message, ProcessOptions{Now: testNow}); !errors.Is(err, ErrReplay) {
		t.Fatalf("second delivery of an accepted private commit: %v", err)
	}
}
