package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/p2p"
)

// syncRecorder wraps the /grove/sync/1 handler of some nodes and records,
// in order, which of them a given peer asked.
type syncRecorder struct {
	mu    sync.Mutex
	from  peer.ID
	asked []peer.ID
}

func recordSyncs(from *Node, servers ...*Node) *syncRecorder {
	r := &syncRecorder{from: from.PeerID()}
	for _, s := range servers {
		s.net.Serve(p2p.ProtocolSync, func(ctx context.Context, st p2p.Stream) {
			if st.RemotePeer() == r.from {
				r.mu.Lock()
				r.asked = append(r.asked, s.PeerID())
				r.mu.Unlock()
			}
			s.serveSync(ctx, st)
		})
	}
	return r
}

func (r *syncRecorder) take() []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.asked
	r.asked = nil
	return out
}

// quietSync runs fn on a's goroutine once no sync of a is in flight or
// wanted, with the sync rate limit reset, so that fn's sync (if any) is
// the only one.
func quietSync(t *testing.T, ctx context.Context, a *groupActor, fn func() error) {
	t.Helper()
	eventually(t, 10*time.Second, "no sync in flight", func() error {
		return a.do(ctx, func() error {
			if a.syncs > 0 || a.syncWanted {
				return fmt.Errorf("%d syncs in flight, wanted %v", a.syncs, a.syncWanted)
			}
			a.lastSync = time.Time{}
			return fn()
		})
	})
}

// TestHeldMessageOnUnknownEpochFetchesFromNamedMember: an application
// message for an epoch we do not hold (the other side of a partition that
// has just healed, whose Commit was lost while its messages were not) used
// to be held and fetched for from whichever member anti-entropy's rotation
// came to. Now the framing names the epoch (messageAD), the node tells
// commitorder (CiphertextPending), and commitorder's FetchRange names the
// member seen on a branch we do not hold, which is asked first. The
// rotation is set to start elsewhere, so only the hint can make carol ask
// dave.
func TestHeldMessageOnUnknownEpochFetchesFromNamedMember(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol", "dave")
	alice, bob, carol, dave := ns[0], ns[1], ns[2], ns[3]
	ctx := ctxT(t, 30*time.Second)
	if _, err := alice.Send(ctx, g, "on the canonical epoch"); err != nil {
		t.Fatal(err)
	}
	ep := groupEpoch(t, alice, g)
	_, apps := logged(t, alice, g, ep)
	if len(apps) == 0 {
		t.Fatal("alice logged no message")
	}
	m, err := mls.UnmarshalMLSMessage(apps[len(apps)-1])
	if err != nil {
		t.Fatal(err)
	}
	var aliceHead commitorder.EpochID
	aa := groupActorOf(t, alice, g)
	if err := aa.do(ctx, func() error { aliceHead, _ = aa.head(); return nil }); err != nil {
		t.Fatal(err)
	}
	if eid, ok := framedEpoch(m); !ok || eid != aliceHead {
		t.Fatalf("alice's message names epoch %x (ok %v), not her head %x", eid, ok, aliceHead)
	}
	// A message of the next epoch on a branch carol does not hold: alice's
	// ciphertext re-framed (the framing is all a member that lacks the
	// epoch can read).
	// A message of the next epoch on a branch carol does not hold: alice's
	// ciphertext re-framed (the framing is all a member that lacks the
	// epoch can read).
	var sibling, next commitorder.EpochID
	rand.Read(sibling[:])
	rand.Read(next[:])
	m.PrivateMessage.Epoch = ep + 1
	m.PrivateMessage.AuthenticatedData = messageAD(next)
	forged, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rec := recordSyncs(carol, alice, bob, dave)
	a := groupActorOf(t, carol, g)
	if err := a.do(ctx, func() error { carol.cfg.SyncFanout = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	// commitorder asks for a range at most once per Retry (FinalityAge in
	// tests): let any earlier request age.
	time.Sleep(2 * carol.cfg.FinalityAge)
	quietSync(t, ctx, a, func() error {
		if eid, g := a.head(); g == nil || g.Epoch() != ep {
			return fmt.Errorf("carol not on epoch %d (head %x)", ep, eid)
		}
		rec.take()
		// dave has been seen on that branch: on a sibling of carol's
		// epoch. An act on an epoch we lack at our head's own number now
		// counts as being behind (commitorder compares epoch ids, not
		// numbers), so it may start a fetch by itself; if it does, that
		// fetch names dave too (checked below: he is asked first).
		a.step(commitorder.AppMessageSeen{Eid: sibling, Epoch: ep, Sender: commitorder.MemberID(dave.selfID)})
		actSyncs := a.syncs
		if actSyncs > 1 {
			t.Errorf("the act alone started %d syncs", actSyncs)
		}
		connected := carol.net.Peers()
		slices.Sort(connected)
		i := slices.Index(connected, dave.PeerID())
		if i < 0 {
			return fmt.Errorf("dave not connected to carol")
		}
		a.syncRound = i + 1 // the rotation would ask the member after dave
		before := a.held.len()
		a.receive(forged)
		if a.held.len() != before+1 {
			t.Errorf("message not held (%d held, had %d)", a.held.len(), before)
		}
		if a.syncs < 1 || a.syncs > actSyncs+1 {
			t.Errorf("%d syncs started (%d by the act), want the act's or one more", a.syncs, actSyncs)
		}
		return nil
	})
	eventually(t, 5*time.Second, "carol asked a member", func() error {
		asked := rec.take()
		if len(asked) == 0 {
			return fmt.Errorf("nobody asked")
		}
		if asked[0] != dave.PeerID() {
			t.Fatalf("carol asked %v first, want dave (%s)", asked, dave.PeerID())
		}
		return nil
	})
}

// framedEpoch is the epoch id an application message's framing names.
func framedEpoch(m *mls.MLSMessage) (commitorder.EpochID, bool) {
	var eid commitorder.EpochID
	if m.WireFormat != mls.WireFormatPrivateMessage || len(m.PrivateMessage.AuthenticatedData) != 17 {
		return eid, false
	}
	copy(eid[:], m.PrivateMessage.AuthenticatedData[1:])
	return eid, true
}

// TestFetchRangeAsksNamedMembersFirst: FetchRange.Peers names the members
// seen on the epochs we miss; they are asked first (with a fanout of one,
// only they are). Before, the node asked members in its anti-entropy
// rotation and could miss the only one holding the winning branch until
// age finality settled the other (commitorder simulator seed 37642). Each
// round names a different member, in the opposite order of the rotation,
// so the rotation cannot pass by chance.
func TestFetchRangeAsksNamedMembersFirst(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol", "dave")
	alice, others := ns[0], ns[1:]
	ctx := ctxT(t, 30*time.Second)
	rec := recordSyncs(alice, others...)
	a := groupActorOf(t, alice, g)
	if err := a.do(ctx, func() error { alice.cfg.SyncFanout = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	named := slices.Clone(others)
	slices.SortFunc(named, func(x, y *Node) int {
		if x.PeerID() > y.PeerID() {
			return -1
		}
		return 1
	})
	for _, n := range named {
		quietSync(t, ctx, a, func() error {
			rec.take()
			a.effect(commitorder.FetchRange{Peers: []commitorder.MemberID{commitorder.MemberID(n.selfID)}})
			if a.syncs != 1 {
				t.Errorf("%d syncs started, want 1", a.syncs)
			}
			return nil
		})
		eventually(t, 5*time.Second, "alice asked "+n.self.Name, func() error {
			asked := rec.take()
			if len(asked) == 0 {
				return fmt.Errorf("nobody asked")
			}
			if asked[0] != n.PeerID() {
				t.Fatalf("alice asked %v first, want %s (%s)", asked, n.self.Name, n.PeerID())
			}
			return nil
		})
	}
}
