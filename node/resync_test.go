package node

import (
	"fmt"
	"testing"
	"time"
)

// resyncBurst is how many messages alice sends per epoch in
// TestGossipAheadOfResyncLosesNothing: more than mls's default window of
// skipped keys (256), fewer than its forward bound (1000).
const resyncBurst = 300

// TestGossipAheadOfResyncLosesNothing is the regression test for the
// BenchmarkResync stall (bob stuck at 1551 of 2001 messages, about one run
// in ten). A member returning from a long absence got the tail of what it
// missed before the head: GossipSub's IWANT repair serves the last seconds
// of messages from the sender's cache as soon as the member is back on the
// topic, ahead of the /grove/sync/1 pages that bring the rest in order. The
// first late message of an epoch the member held moved that sender's
// ratchet hundreds of generations ahead; a message of a later epoch waited
// in the held buffer and moved it ahead the moment its Commit arrived. MLS
// keeps only a bounded number of skipped generations' keys (it then erases
// the oldest), so the earlier messages, arriving next from the sync in
// order, could never be decrypted: the catch-up stalled for good.
func TestGossipAheadOfResyncLosesNothing(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 60*time.Second)
	// Alice commits only once bob has been seen on the epoch (commitorder's
	// unconfirmed genesis): let a few tips go round.
	time.Sleep(3 * bob.cfg.TipInterval)
	// Bob is away: he hears nothing but what the test hands him.
	isolate(bob, alice)
	isolate(alice, bob)

	e0 := groupEpoch(t, alice, g)
	var want []string
	for e := range 2 {
		for i := range resyncBurst {
			text := fmt.Sprintf("epoch %d message %d while bob was away", e, i)
			if _, err := alice.Send(ctx, g, text); err != nil {
				t.Fatal(err)
			}
			want = append(want, text)
		}
		if e == 0 {
			if err := alice.Rotate(ctx, g); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "alice rotated", func() error {
				if ep := groupEpoch(t, alice, g); ep != e0+1 {
					return fmt.Errorf("alice on epoch %d", ep)
				}
				return nil
			})
		}
	}
	commits, apps0 := logged(t, alice, g, e0)
	_, apps1 := logged(t, alice, g, e0+1)
	if len(commits) != 1 || len(apps0) < resyncBurst || len(apps1) != resyncBurst {
		t.Fatalf("alice logged %d commits and %d messages on epoch %d, %d messages on %d; want 1, >= %d, %d",
			len(commits), len(apps0), e0, len(apps1), e0+1, resyncBurst, resyncBurst)
	}
	// What gossip repair hands bob first: the last message of each epoch
	// (the one of the next epoch is held until its Commit).
	deliver(t, ctx, bob, g, apps0[len(apps0)-1], apps1[len(apps1)-1])
	// Then the sync, in the order alice logged (LogByEpoch: arrival order).
	var page [][]byte
	page = append(page, apps0...)
	page = append(page, commits...)
	page = append(page, apps1...)
	deliver(t, ctx, bob, g, page...)
	if err := hasTexts(bob, g, want...); err != nil {
		t.Fatal(err)
	}
}
