package node

import (
	"context"
	"crypto/cipher"
	"fmt"
	"slices"
	"testing"
	"time"

	"grove/commitorder"
	"grove/store"
)

// TestTipFromMemberBehindOnOurChain: a member catching up on our chain
// tips epochs we have finalised and forgotten (commitorder no longer knows
// them). Such a tip used to be taken for another branch and sent every
// member on a deep sync, with fanout, while the member was still catching
// up from them (BenchmarkResync: nine syncs of thousands of messages per
// tip). An epoch we finalised is ours: the tip starts no sync.
func TestTipFromMemberBehindOnOurChain(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	ab := groupActorOf(t, bob, g)
	var old commitorder.EpochID
	var oldEpoch uint64
	var oldKey cipher.AEAD
	if err := ab.do(ctx, func() error {
		eid, g := ab.head()
		old, oldEpoch = eid, g.Epoch()
		var err error
		oldKey, err = epochKey(g)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		before := epochOf(t, ctx, alice, g)
		if err := alice.Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "rotation", func() error {
			if e := epochOf(t, ctx, alice, g); e <= before {
				return fmt.Errorf("alice still on epoch %d", e)
			}
			return nil
		})
	}
	aa := groupActorOf(t, alice, g)
	eventually(t, 10*time.Second, "old epoch final at alice", func() error {
		m, err := alice.db.EpochMarker(aa.id, store.EpochID(old))
		if err != nil || m.Mark != store.MarkFinal {
			return fmt.Errorf("marker %+v, %v", m, err)
		}
		return aa.do(ctx, func() error {
			if aa.co.Known(old) {
				return fmt.Errorf("commitorder still knows epoch %d", oldEpoch)
			}
			return nil
		})
	})
	quietSync(t, ctx, aa, func() error {
		tp := &tip{Group: aa.id, Time: uint64(time.Now().UnixNano()), Epoch: oldEpoch, Eid: old,
			RootEpoch: oldEpoch, Root: old, SigKey: bob.sig.PublicKey()}
		sig, err := bob.sig.SignWithLabel("grove tip", tp.tbs())
		if err != nil {
			return err
		}
		tp.Signature = sig
		aa.onSealed(seal(oldKey, sealedTip, tp.marshal()), "")
		if aa.deepSync || aa.syncs > 0 || aa.syncWanted {
			t.Errorf("a tip of our final epoch %d started a sync (deep %v, %d in flight, wanted %v)",
				oldEpoch, aa.deepSync, aa.syncs, aa.syncWanted)
		}
		return nil
	})
}

// TestForcedSyncWaitsForSyncInFlight: a returning member connects to
// several members at once and each connection forces a sync. They used to
// run in parallel, each bringing the whole log; now a forced request while
// a sync is in flight waits for it and goes out right after.
func TestForcedSyncWaitsForSyncInFlight(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 30*time.Second)
	rec := recordSyncs(alice, bob, carol)
	a := groupActorOf(t, alice, g)
	quietSync(t, ctx, a, func() error {
		rec.take()
		a.requestSync(bob.PeerID(), true)
		a.requestSync(carol.PeerID(), true)
		if a.syncs != 1 || !a.syncWanted {
			t.Errorf("%d syncs in flight (want 1), deferred %v (want true)", a.syncs, a.syncWanted)
		}
		return nil
	})
	eventually(t, 5*time.Second, "both asked, one after the other", func() error {
		asked := rec.take()
		if len(asked) == 0 {
			return fmt.Errorf("nobody asked yet")
		}
		if asked[0] != bob.PeerID() {
			t.Fatalf("asked %v, want bob first", asked)
		}
		if !slices.Contains(asked, carol.PeerID()) {
			rec.mu.Lock()
			rec.asked = append(asked, rec.asked...)
			rec.mu.Unlock()
			return fmt.Errorf("carol not asked yet (asked %v)", asked)
		}
		return nil
	})
}

// epochOf is n's canonical epoch of group.
func epochOf(t *testing.T, ctx context.Context, n *Node, group string) uint64 {
	t.Helper()
	gs, err := n.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == group {
			return g.Epoch
		}
	}
	t.Fatalf("%s has no group %.8s", n.cfg.Name, group)
	return 0
}
