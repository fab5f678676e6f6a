package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
)

func groupInfo(t *testing.T, n *Node, id string) api.Group {
	t.Helper()
	gs, err := n.Groups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == id {
			return g
		}
	}
	t.Fatalf("%s does not list group %s", n.self.Name, id)
	return api.Group{}
}

func unreadIs(n *Node, id string, want int) error {
	gs, err := n.Groups(context.Background())
	if err != nil {
		return err
	}
	for _, g := range gs {
		if g.ID == id {
			if g.Unread != want {
				return fmt.Errorf("%s: %d unread, want %d", n.self.Name, g.Unread, want)
			}
			return nil
		}
	}
	return fmt.Errorf("%s does not list the group", n.self.Name)
}

// TestUnreadCounts runs two real daemons: messages from others count as
// unread, one's own never do, MarkRead resets the count, and both the
// count and the reset survive a restart.
func TestUnreadCounts(t *testing.T) {
	checkLeaks(t)
	bobHome := t.TempDir()
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	bob := realNode(t, bobHome, "bob")
	defer func() { bob.Close() }()
	ctx := ctxT(t, 60*time.Second)
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
	send := func(n *Node, texts ...string) {
		t.Helper()
		for _, s := range texts {
			if _, err := n.Send(ctx, g.ID, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(alice, "one", "two", "three")
	send(bob, "bob's own")
	eventually(t, 15*time.Second, "bob has alice's messages", func() error { return hasTexts(bob, g.ID, "one", "two", "three") })
	eventually(t, 15*time.Second, "alice has bob's message", func() error { return hasTexts(alice, g.ID, "bob's own") })
	if err := unreadIs(bob, g.ID, 3); err != nil {
		t.Fatal(err)
	}
	if err := unreadIs(alice, g.ID, 1); err != nil {
		t.Fatal(err)
	}
	// Reading the log does not mark read by itself; MarkRead does.
	if _, err := bob.Log(ctx, g.ID, 10); err != nil {
		t.Fatal(err)
	}
	if err := unreadIs(bob, g.ID, 3); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	if err := unreadIs(bob, g.ID, 0); err != nil {
		t.Fatal(err)
	}
	send(alice, "four", "five")
	eventually(t, 15*time.Second, "bob has four and five", func() error { return hasTexts(bob, g.ID, "four", "five") })
	if err := unreadIs(bob, g.ID, 2); err != nil {
		t.Fatal(err)
	}
	restart := func() {
		t.Helper()
		if err := bob.Close(); err != nil {
			t.Fatal(err)
		}
		bob = realNode(t, bobHome, "bob")
	}
	restart()
	if err := unreadIs(bob, g.ID, 2); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if err := bob.MarkRead(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	restart()
	if err := unreadIs(bob, g.ID, 0); err != nil {
		t.Fatalf("mark read lost in a restart: %v", err)
	}
	if err := bob.MarkRead(ctx, "no such group"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("mark read of an unknown group: %v", err)
	}
}

// TestRemovedGroupListedAsRemoved: a device removed from a group still
// lists it, marked removed, with its history readable; sending to it fails
// with an error that says why; leaving then deletes it.
func TestRemovedGroupListedAsRemoved(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	if got := groupInfo(t, bob, g).State; got != api.GroupActive {
		t.Fatalf("bob's group state %q before removal", got)
	}
	if _, err := alice.Send(ctx, g, "before the removal"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob has the message", func() error { return hasTexts(bob, g, "before the removal") })
	if err := alice.Remove(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "bob removed", func() error {
		if s := groupInfo(t, bob, g).State; s != api.GroupRemoved {
			return fmt.Errorf("bob's group state %q", s)
		}
		return nil
	})
	if gi := groupInfo(t, bob, g); gi.Members != 0 || gi.Admin {
		t.Fatalf("removed group still claims membership: %+v", gi)
	}
	_, err := bob.Send(ctx, g, "anyone?")
	if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("send to a removed group: %v", err)
	}
	if err := hasTexts(bob, g, "before the removal"); err != nil {
		t.Fatalf("history gone after removal: %v", err)
	}
	if _, err := bob.Members(ctx, g); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("members of a removed group: %v", err)
	}
	// Invited again, bob is told to leave the old group first.
	inv, err := alice.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, inv.Code); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "leave it first") {
		t.Fatalf("joining a group one was removed from: %v", err)
	}
	if err := bob.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	if gs, _ := bob.Groups(ctx); len(gs) != 0 {
		t.Fatalf("left group still listed: %+v", gs)
	}
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatalf("joining again after leaving: %v", err)
	}
	eventually(t, 10*time.Second, "bob back", func() error {
		if s := groupInfo(t, bob, g).State; s != api.GroupActive {
			return fmt.Errorf("bob's state %q", s)
		}
		if c := memberCount(alice, g); c != 2 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return nil
	})
}

// TestPendingRemovalListed: between the Commit that removes bob and its
// finality (which a removed member can only reach by age: it sees no later
// epoch), bob's group is listed as removing, with the epoch and member
// count of the removal, and sending says why it fails. Regression: the
// list showed epoch 0, 0 members and state active, and a send failed
// with "group has no usable epoch".
func TestPendingRemovalListed(t *testing.T) {
	checkLeaks(t)
	_, ns, g := wrappedMemGroup(t, func(_ string, net p2p.Network, cfg *Config) p2p.Network {
		cfg.FinalityAge = 4 * time.Second
		return net
	}, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	before := groupInfo(t, alice, g).Epoch
	if err := alice.Remove(ctx, g, "bob"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "bob's removal pending", func() error {
		if gi := groupInfo(t, bob, g); gi.State != api.GroupRemoving || gi.Epoch != before+1 || gi.Members != 1 {
			return fmt.Errorf("bob's group %+v", gi)
		}
		return nil
	})
	if _, err := bob.Send(ctx, g, "still here?"); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "removing this device") {
		t.Fatalf("send while the removal is pending: %v", err)
	}
	eventually(t, 15*time.Second, "bob removed", func() error {
		if s := groupInfo(t, bob, g).State; s != api.GroupRemoved {
			return fmt.Errorf("bob's group state %q", s)
		}
		return nil
	})
}
