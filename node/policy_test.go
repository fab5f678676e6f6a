package node

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"grove/commitorder"
	"grove/mls"
)

// TestPolicyRejectsNonAdminRemove: bob (not an admin) forges a valid MLS
// Commit removing carol and publishes it; commitorder's policy check makes
// it invalid on every honest member, so nobody applies it.
func TestPolicyRejectsNonAdminRemove(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 20*time.Second)
	a, err := bob.lookup(g)
	if err != nil {
		t.Fatal(err)
	}
	before := groupEpoch(t, alice, g)
	err = a.do(ctx, func() error {
		eid, head := a.head()
		leaf, ok := leafOf(head, carol.selfID)
		if !ok {
			t.Error("carol not found")
			return nil
		}
		sc, err := head.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: leaf}}},
			SkipCached: true, Private: true, AuthenticatedData: commitAD(eid, commitorder.ClassRemove, commitorder.MemberID(bob.selfID)),
			Now: time.Now(), Rand: rand.Reader})
		if err != nil {
			return err
		}
		msg := sc.Message
		sc.Discard()
		env, err := a.sealIn(eid, sealedMLS, msg)
		if err != nil {
			return err
		}
		return bob.net.Publish(context.Background(), a.wire.topic, env)
	})
	if err != nil {
		t.Fatal(err)
	}
	// An admin-free change still works afterwards, and the forged removal
	// never took effect.
	time.Sleep(500 * time.Millisecond)
	if _, err := carol.Send(ctx, g, "carol is still here"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{alice, bob} {
		eventually(t, 5*time.Second, "carol still a member", func() error { return hasTexts(n, g, "carol is still here") })
		if c := memberCount(n, g); c != 3 {
			t.Fatalf("%s sees %d members", n.self.Name, c)
		}
	}
	if e := groupEpoch(t, alice, g); e != before {
		t.Fatalf("alice moved from epoch %d to %d on a forged commit", before, e)
	}
}

// TestExternalCommitImpersonationDropped: an outsider who got hold of a
// GroupInfo joins by external Commit claiming bob's identity (a basic
// credential is only bytes) and "resyncing" bob's leaf away. The key does
// not match bob's, so members drop the commit.
func TestExternalCommitImpersonationDropped(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 20*time.Second)
	a, _ := alice.lookup(g)
	var gi []byte
	if err := a.do(ctx, func() error {
		_, head := a.head()
		var err error
		gi, err = head.GroupInfo(true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before := groupEpoch(t, alice, g)
	fpBefore, _ := alice.Members(ctx, g)
	s, _ := DefaultCipherSuite.Suite()
	mallory, _ := s.GenerateSigningKey(rand.Reader)
	_, commit, err := mls.JoinExternal(&mls.ExternalJoinParams{
		GroupInfo: gi, Credential: mls.NewBasicCredential(bob.selfID), SigningKey: mallory,
		Capabilities: mls.Capabilities{Extensions: groveExtensions},
		Resync:       true, Now: time.Now(), Rand: rand.Reader,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.do(ctx, func() error { return alice.net.Publish(ctx, a.wire.topic, a.wire.seal(commit)) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := bob.Send(ctx, g, "bob is still bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "bob's message", func() error { return hasTexts(alice, g, "bob is still bob") })
	if e := groupEpoch(t, alice, g); e != before {
		t.Fatalf("alice moved from epoch %d to %d on an impersonating external commit", before, e)
	}
	fpAfter, _ := alice.Members(ctx, g)
	for i := range fpBefore {
		if fpBefore[i].Fingerprint != fpAfter[i].Fingerprint {
			t.Fatalf("member %s changed key", fpBefore[i].Name)
		}
	}
}
