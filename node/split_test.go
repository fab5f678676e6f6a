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
// learn that they lost (commitorder's Rejoin) and refuse to send into the
// dead branch with a clear error, while the winning half keeps working.
func TestSplitBrainBeyondWindow(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol", "dave")
	ctx := ctxT(t, 40*time.Second)
	for _, x := range ns[:2] {
		for _, y := range ns[2:] {
			x.net.(*p2p.MemNode).Disconnect(y.PeerID())
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
	time.Sleep(3 * time.Second)
	for _, n := range ns {
		gs, _ := n.Groups(ctx)
		a, _ := n.lookup(g)
		var stale bool
		a.do(ctx, func() error { stale = a.stale; return nil })
		t.Logf("%s: epoch %d %s stale=%v texts=%q", n.self.Name, gs[0].Epoch, gs[0].EpochID[:8], stale, texts(t, n, g))
	}
	_ = fmt.Sprint()
}
