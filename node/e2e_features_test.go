package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"grove/node/api"
)

// TestRealNodesInviteChainAndHandover runs three real daemons (libp2p on
// 127.0.0.1, Pebble in temporary directories) through issue 8's join
// request, leave and removal paths: alice (admin) invites bob; bob, not an
// admin, invites carol (a join request alice commits); alice, the last
// admin, leaves and bob inherits the role; bob removes carol, who sees
// the group as removed and cannot send.
func TestRealNodesInviteChainAndHandover(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	bob := realNode(t, t.TempDir(), "bob")
	defer bob.Close()
	carol := realNode(t, t.TempDir(), "carol")
	defer carol.Close()
	ctx := ctxT(t, 90*time.Second)

	g, err := alice.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	// Carol only knows bob (his invite carries his addresses).
	inv, err = bob.Invite(ctx, "team")
	if err != nil {
		t.Fatalf("member invite: %v", err)
	}
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatalf("join through bob's invite: %v", err)
	}
	all := []*Node{alice, bob, carol}
	eventually(t, 20*time.Second, "three members everywhere", func() error {
		for _, n := range all {
			if c := memberCount(n, g.ID); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(all, g.ID)
	})
	if _, err := carol.Send(ctx, g.ID, "hello from carol"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{alice, bob} {
		eventually(t, 15*time.Second, "carol's message", func() error { return hasTexts(n, g.ID, "hello from carol") })
	}

	if err := alice.Leave(ctx, g.ID); err != nil {
		t.Fatalf("last admin leaving: %v", err)
	}
	rest := []*Node{bob, carol}
	eventually(t, 20*time.Second, "alice gone, bob admin", func() error {
		for _, n := range rest {
			if c := memberCount(n, g.ID); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
			if m, err := memberByName(n, g.ID, "bob"); err != nil || !m.Admin {
				return fmt.Errorf("%s: bob %+v %v", n.self.Name, m, err)
			}
		}
		return sameEpoch(rest, g.ID)
	})

	if err := bob.Remove(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "carol removed", func() error {
		if s := groupInfo(t, carol, g.ID).State; s != api.GroupRemoved {
			return fmt.Errorf("carol's state %q", s)
		}
		return nil
	})
	if _, err := carol.Send(context.Background(), g.ID, "still here?"); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("removed carol sending: %v", err)
	}
	if err := hasTexts(carol, g.ID, "hello from carol"); err != nil {
		t.Fatalf("carol's history after removal: %v", err)
	}
}
