package node

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"grove/mls"
	"grove/p2p"
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
		_, head := a.head()
		leaf, ok := leafOf(head, carol.selfID)
		if !ok {
			t.Error("carol not found")
			return nil
		}
		sc, err := head.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: leaf}}},
			SkipCached: true, Now: time.Now(), Rand: rand.Reader})
		if err != nil {
			return err
		}
		msg := sc.Message
		sc.Discard()
		return bob.net.Publish(context.Background(), p2p.GroupID(a.id), msg)
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
