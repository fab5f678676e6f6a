package mls

import (
	"errors"
	"testing"
)

// impersonate makes g's own leaf, in g's view only, carry the basic
// credential of identity, so that the leaves g signs next (Update
// proposals, UpdatePath leaves) claim that identity with valid signatures:
// what a malicious member's client would send.
func impersonate(g *Group, identity string) {
	g.tree.LeafNode(g.own).Credential = NewBasicCredential([]byte(identity))
}

// TestCommitPathLeafKeepsIdentity: a Commit whose UpdatePath leaf carries
// another identity is rejected by receivers with ErrCredentialChanged and
// leaves their state unchanged, unless the group's policy allows it.
func TestCommitPathLeafKeepsIdentity(t *testing.T) {
	tg := newTestGroup(t, testSuite, 61, "alice")
	tg.add("alice", "bob", "carol")
	alice := tg.members["alice"]
	impersonate(alice, "mallory")
	sc, err := alice.Commit(&CommitOptions{ForcePath: true, Now: testNow, Rand: tg.rand})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"bob", "carol"} {
		expectRejected(t, n+" processes a path leaf of another identity", tg.members[n], sc.Message, ErrCredentialChanged)
	}

	// An application that lets members change identity says so.
	bob := tg.members["bob"]
	bob.SetCredentialPolicy(func(old, next *Credential) error { return nil })
	pm, err := bob.ProcessMessage(sc.Message, ProcessOptions{Now: testNow})
	if err != nil {
		t.Fatalf("permissive policy: %v", err)
	}
	next, err := pm.Commit.Merge()
	if err != nil {
		t.Fatal(err)
	}
	if got := next.tree.LeafNode(alice.own).Credential.Identity; string(got) != "mallory" {
		t.Fatalf("alice's leaf has identity %q after the permitted change", got)
	}
}

// TestUpdateKeepsIdentity: an Update proposal of another identity is
// rejected when it arrives and is not committed.
func TestUpdateKeepsIdentity(t *testing.T) {
	tg := newTestGroup(t, testSuite, 62, "alice")
	tg.add("alice", "bob", "carol")
	bob := tg.members["bob"]
	impersonate(bob, "mallory")
	msg, _, err := bob.ProposeUpdate(false, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	expectRejected(t, "Update of another identity", tg.members["alice"], msg, ErrCredentialChanged)

	// A member that cached it under a permissive policy and then commits
	// under the default one does not put it in the next epoch.
	carol := tg.members["carol"]
	carol.SetCredentialPolicy(func(old, next *Credential) error { return nil })
	if _, err := carol.ProcessMessage(msg, ProcessOptions{Now: testNow}); err != nil {
		t.Fatal(err)
	}
	carol.SetCredentialPolicy(nil)
	sc, err := carol.Commit(&CommitOptions{Now: testNow, Rand: tg.rand})
	if err == nil {
		for _, p := range sc.Proposals {
			if p.Type == ProposalTypeUpdate {
				t.Fatal("commit includes the Update of another identity")
			}
		}
	} else if !errors.Is(err, ErrCredentialChanged) {
		t.Fatalf("commit: %v", err)
	}
}

// TestForgedExternalRemovalRejected: an external commit whose new leaf has
// another identity than the leaf it removes is refused, by the removed
// member too (issue 18 item 7: the self-removed return ran before the
// credential check, so the victim took the forgery as its removal).
func TestForgedExternalRemovalRejected(t *testing.T) {
	tg := newTestGroup(t, testSuite, 63, "alice")
	tg.add("alice", "bob", "carol")
	gi, err := tg.members["alice"].GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := tg.cs.Suite()
	sig, err := s.GenerateSigningKey(tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := JoinExternal(&ExternalJoinParams{
		GroupInfo: gi, Credential: NewBasicCredential([]byte("mallory")), SigningKey: sig,
		Now: testNow, Rand: tg.rand, Config: tg.cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Mallory adds a Remove of carol and signs the commit again.
	m, err := UnmarshalMLSMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	carol := tg.members["carol"]
	c := m.PublicMessage.Content
	c.Commit.Proposals = append(c.Commit.Proposals, ProposalOrRef{Type: ProposalOrRefProposal,
		Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: carol.own}}})
	ac := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: c}
	if err := ac.sign(sig, carol.ctxEnc); err != nil {
		t.Fatal(err)
	}
	ac.Auth.ConfirmationTag = m.PublicMessage.Auth.ConfirmationTag
	forged, err := NewMLSMessage(&PublicMessage{Content: ac.Content, Auth: ac.Auth})
	if err != nil {
		t.Fatal(err)
	}
	data, err := forged.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"carol", "bob", "alice"} {
		expectRejected(t, n+" processes a forged external removal of carol", tg.members[n], data, ErrCredentialChanged)
	}
}
