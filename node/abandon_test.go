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

// TestAbandonedAddNotReAddedAfterFork: a joiner gives up after the admin
// committed its Add, and that Commit then loses a fork to a sibling made
// on the other side of a partition. commitorder hands the Add back to be
// committed again; it must be dropped, not re-added, or the removal of
// the abandoned leaf (queued when the joiner gave up) finds nothing to
// remove and the group keeps a member that never comes (chaos seed 77
// with 60 s faults: a re-invited member's join timed out, and the group
// never converged on its real members).
func TestAbandonedAddNotReAddedAfterFork(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	// A rate limit of one makes alice's Add, right after her own
	// rotation, lose to carol's concurrent rotation (the limited bit
	// leads commitorder's fork-choice key): the simplest fork that
	// orphans an admin's Add in a group with one admin.
	alice := memNodeWith(t, mn, "alice", func(c *Config) { c.CommitRate = 1 })
	bob, carol := memNode(t, mn, "bob"), memNode(t, mn, "carol")
	ctx := ctxT(t, 60*time.Second)
	for _, n := range []*Node{bob, carol} {
		if err := n.Connect(ctx, alice.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	g := createAndJoin(t, ctx, alice, carol)
	pair := []*Node{alice, carol}
	start := epochOf(t, ctx, alice, g.ID)
	if err := alice.Rotate(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice's rotation on both", func() error {
		if e := epochOf(t, ctx, carol, g.ID); e != start+1 {
			return fmt.Errorf("carol at epoch %d", e)
		}
		return sameEpoch(pair, g.ID)
	})
	carol.net.(*p2p.MemNode).Disconnect(alice.PeerID())
	if err := carol.Rotate(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol's rotation", func() error {
		if e := epochOf(t, ctx, carol, g.ID); e != start+2 {
			return fmt.Errorf("carol at epoch %d", e)
		}
		return nil
	})
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = bob.Join(short, inv.Code)
	cancel()
	if !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("bob's join: got %v, want a timeout", err)
	}
	eventually(t, 10*time.Second, "bob's add committed", func() error {
		if _, err := memberByName(alice, g.ID, "bob"); err != nil {
			return err
		}
		return nil
	})
	// alice learns that bob gave up at her next keepalive to him.
	time.Sleep(joinKeepalive + time.Second)
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	noBob := func() error {
		for _, n := range pair {
			if _, err := memberByName(n, g.ID, "bob"); err == nil {
				return fmt.Errorf("%s still has bob's leaf", n.self.Name)
			}
			if c := memberCount(n, g.ID); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(pair, g.ID)
	}
	eventually(t, 4*joinKeepalive, "one group of alice and carol", noBob)
	// The fork point becomes final soon after the heal and alice's lost
	// Commits are discarded then, their intents handed back: bob must not
	// come back with them.
	time.Sleep(10 * alice.cfg.FinalityAge)
	eventually(t, 4*joinKeepalive, "still one group of alice and carol", noBob)
}
