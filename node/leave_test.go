package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
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

// crashReal stops a node on a real host as a killed process stops: the
// connections drop first, so it sends no PRUNE (after which the peers'
// GossipSub would refuse its mesh for a minute once it is back).
func crashReal(n *Node) {
	n.net.(*p2p.Host).Libp2pHost().Network().Close()
	n.Close()
}

// TestLastAdminLeavesWhileOnlyMemberOffline: alice, the only admin, leaves
// while bob, the only other member, is offline. The handover Commit and
// the leave intent reach nobody then; alice keeps the group (unlisted)
// until bob, back later, has taken them from her, become admin and removed
// her; then her device deletes it. Regression: alice deleted the group at
// once, and bob was left with alice as the only admin and member forever.
// Also with alice's daemon restarted while she waits: the leaving state is
// stored and resumed.
func TestLastAdminLeavesWhileOnlyMemberOffline(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("alice restarted %v", restart), func(t *testing.T) { testLeaveOffline(t, restart) })
	}
}

func testLeaveOffline(t *testing.T, restartAlice bool) {
	checkLeaks(t)
	aliceHome := t.TempDir()
	alice := realNode(t, aliceHome, "alice")
	defer func() { alice.Close() }()
	bobHome := t.TempDir()
	bob := realNode(t, bobHome, "bob")
	ctx := ctxT(t, 90*time.Second)
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, "g")
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
	if _, err := bob.Send(ctx, g.ID, "hello"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "hello", func() error { return hasTexts(alice, g.ID, "hello") })
	crashReal(bob)

	if err := alice.Leave(ctx, g.ID); err != nil {
		t.Fatalf("last admin leaving with the only other member offline: %v", err)
	}
	if gs, _ := alice.Groups(ctx); len(gs) != 0 {
		t.Fatalf("alice still lists %+v", gs)
	}
	if _, err := alice.Send(ctx, g.ID, "after leaving"); err == nil {
		t.Fatal("alice could still send to the group she left")
	}
	if restartAlice {
		alice.Close()
		alice = realNode(t, aliceHome, "alice")
		if gs, _ := alice.Groups(ctx); len(gs) != 0 {
			t.Fatalf("alice lists %+v after a restart", gs)
		}
		alice.mu.Lock()
		left := len(alice.leaving)
		alice.mu.Unlock()
		if left != 1 {
			t.Fatalf("alice resumed %d groups being left, want 1", left)
		}
	}

	bob = realNode(t, bobHome, "bob")
	defer bob.Close()
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "bob admin and alone", func() error {
		if c := memberCount(bob, g.ID); c != 1 {
			return fmt.Errorf("bob sees %d members", c)
		}
		if m, err := memberByName(bob, g.ID, "bob"); err != nil || !m.Admin {
			return fmt.Errorf("bob: %+v %v", m, err)
		}
		return nil
	})
	eventually(t, 30*time.Second, "alice's copy deleted", func() error {
		alice.mu.Lock()
		left := len(alice.leaving)
		alice.mu.Unlock()
		if left != 0 {
			return fmt.Errorf("alice still waits on %d group(s)", left)
		}
		if _, err := alice.db.Group(decodeHexT(t, g.ID)); err == nil {
			return errors.New("alice's store still holds the group")
		}
		return nil
	})
	// A working group: bob, now its admin, adds carol, and they talk.
	carol := realNode(t, t.TempDir(), "carol")
	defer carol.Close()
	if err := carol.Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	inv, err = bob.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Send(ctx, g.ID, "hi bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol's message", func() error { return hasTexts(bob, g.ID, "hi bob") })
}

func decodeHexT(t *testing.T, s string) []byte {
	t.Helper()
	b, err := decodeHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
