package node

import (
	"fmt"
	"testing"
	"time"

	"grove/p2p"
)

// TestSplitBrainBeyondWindow: a 2/2 partition where both halves commit
// and finalise. After the heal, fork choice picks one branch; the other
// half's branch is final on its side, so it cannot switch: its members
// learn that they lost (commitorder's Rejoin), rejoin by external Commit
// removing their old leaves, and re-send what they wrote during the split.
// What the winning half said during the split, in epochs the losing half
// never held (it finalised the fork point: forward secrecy), the winning
// half re-sends once each loser is back on its chain (cutoff.go), and
// what the losers said in the fork point itself before their commit they
// re-send after their rejoin with the rest (rejoin.go). Every member was
// a member of those epochs, so nothing leaks. Before, the
// winners' split messages were lost for the losing half (issue 17: a
// 12-node partition held past the finality age lost 200-400 deliveries);
// they heard the losers' tips from the old branch through sync and so
// never saw them come back.
//
// It used to fail about one run in ten, in two ways, both in the node:
// a member of the winning half was fed by the deep sync the commit that had
// welcomed it, which its genesis does not record, so commitorder took it for
// proof of another chain and had it rejoin the losing half; and when both
// members of the losing half rejoined at once, the one whose rejoin commit
// lost held only its rejoin epoch and never learnt that it lost, because
// the node passed commitorder only members' commits on unknown parents,
// never external ones.
func TestSplitBrainBeyondWindow(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol", "dave")
	ctx := ctxT(t, 40*time.Second)
	for _, x := range ns[:2] {
		for _, y := range ns[2:] {
			x.net.(*p2p.MemNode).Disconnect(y.PeerID())
		}
	}
	// Said in the fork point, before either half's commit: the other
	// half finalises that epoch without it.
	for _, n := range ns {
		if _, err := n.Send(ctx, g, "fork point from "+n.self.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := ns[0].Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := ns[2].Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if _, err := n.Send(ctx, g, "split from "+n.self.Name); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	for _, x := range ns[:2] {
		for _, y := range ns[2:] {
			if err := x.Connect(ctx, y.AddrInfo()); err != nil {
				t.Fatal(err)
			}
		}
	}
	all := []string{"split from alice", "split from bob", "split from carol", "split from dave",
		"fork point from alice", "fork point from bob", "fork point from carol", "fork point from dave"}
	eventually(t, 20*time.Second, "one group again", func() error {
		if err := sameEpoch(ns, g); err != nil {
			return err
		}
		for _, n := range ns {
			if c := memberCount(n, g); c != 4 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		// Everyone shows everything: what the losing half wrote during
		// the split was re-sent after its rejoin, what the winning half
		// wrote was re-sent to each loser once it was back.
		for _, n := range ns {
			if err := hasTexts(n, g, all...); err != nil {
				return fmt.Errorf("%s: %v", n.self.Name, err)
			}
		}
		return nil
	})
	for _, n := range ns {
		a, _ := n.lookup(g)
		var stale bool
		a.do(ctx, func() error { stale = a.phase == phaseRejoining; return nil })
		if stale {
			t.Fatalf("%s still stale", n.self.Name)
		}
		t.Logf("%s: %q", n.self.Name, texts(t, n, g))
	}
	// The group works for all.
	if _, err := ns[3].Send(ctx, g, "together again"); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		eventually(t, 10*time.Second, "after rejoin", func() error { return hasTexts(n, g, "together again") })
	}
}
