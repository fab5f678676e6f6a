package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"grove/node/api"
)

func memberByName(n *Node, group, name string) (api.Member, error) {
	ms, err := n.Members(ctxBG(), group)
	if err != nil {
		return api.Member{}, err
	}
	for _, m := range ms {
		if m.Name == name {
			return m, nil
		}
	}
	return api.Member{}, fmt.Errorf("%s does not see %s in the group", n.self.Name, name)
}

// TestLastAdminLeaves: alice, the only admin, leaves. The admin role
// passes to bob (the longest-standing remaining member), alice's removal
// is committed by him, and bob can then manage the group: he removes
// carol. A member's own leave still works with an admin present.
func TestLastAdminLeaves(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 60*time.Second)
	if m, err := memberByName(bob, g, "bob"); err != nil || m.Admin {
		t.Fatalf("bob before: %+v %v", m, err)
	}
	if err := alice.Leave(ctx, g); err != nil {
		t.Fatalf("last admin leaving: %v", err)
	}
	if gs, _ := alice.Groups(ctx); len(gs) != 0 {
		t.Fatalf("alice still lists %+v", gs)
	}
	rest := []*Node{bob, carol}
	eventually(t, 20*time.Second, "alice removed, bob admin", func() error {
		for _, n := range rest {
			if c := memberCount(n, g); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
			b, err := memberByName(n, g, "bob")
			if err != nil {
				return err
			}
			c, err := memberByName(n, g, "carol")
			if err != nil {
				return err
			}
			if !b.Admin || c.Admin {
				return fmt.Errorf("%s sees bob admin %v, carol admin %v", n.self.Name, b.Admin, c.Admin)
			}
		}
		return sameEpoch(rest, g)
	})
	if groupInfo(t, carol, g).Admin || !groupInfo(t, bob, g).Admin {
		t.Fatal("group list roles wrong after the handover")
	}
	// The new admin can manage the group.
	if err := bob.Remove(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "carol removed by the new admin", func() error {
		if s := groupInfo(t, carol, g).State; s != api.GroupRemoved {
			return fmt.Errorf("carol's state %q", s)
		}
		if c := memberCount(bob, g); c != 1 {
			return fmt.Errorf("bob sees %d members", c)
		}
		return nil
	})
	// The last member, an admin with nobody to hand over to, just leaves.
	if err := bob.Leave(ctx, g); err != nil {
		t.Fatalf("sole member leaving: %v", err)
	}
}

// TestMemberLeavesWithAdminPresent: a non-admin's leave is committed by
// the admin and needs no handover.
func TestMemberLeavesWithAdminPresent(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	if err := bob.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob gone", func() error {
		if c := memberCount(alice, g); c != 1 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return nil
	})
	if m, err := memberByName(alice, g, "alice"); err != nil || !m.Admin {
		t.Fatalf("alice after bob left: %+v %v", m, err)
	}
}

func ctxBG() context.Context { return context.Background() }
