package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"grove/p2p"
)

// memGroup builds a group of the named members on a MemNetwork, all
// connected to each other, and returns the nodes and the group id.
func memGroup(t *testing.T, names ...string) (*p2p.MemNetwork, []*Node, string) {
	t.Helper()
	mn := p2p.NewMemNetwork()
	var ns []*Node
	for _, name := range names {
		ns = append(ns, memNode(t, mn, name))
	}
	ctx := ctxT(t, 30*time.Second)
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			if err := ns[i].Connect(ctx, ns[j].AddrInfo()); err != nil {
				t.Fatal(err)
			}
		}
	}
	g, err := ns[0].CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns[1:] {
		inv, err := ns[0].Invite(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Join(ctx, inv.Code); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "group formed", func() error {
		for _, n := range ns {
			if c := memberCount(n, g.ID); c != len(ns) {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(ns, g.ID)
	})
	return mn, ns, g.ID
}

func TestConcurrentCommitsConverge(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	ctx := ctxT(t, 30*time.Second)
	for round := range 3 {
		var wg sync.WaitGroup
		for _, n := range ns[:2] {
			wg.Go(func() {
				if err := n.Rotate(ctx, g); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		txt := fmt.Sprintf("after round %d", round)
		if _, err := ns[round%3].Send(ctx, g, txt); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "converged", func() error {
			if err := sameEpoch(ns, g); err != nil {
				return err
			}
			for _, n := range ns {
				if err := hasTexts(n, g, txt); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// TestPartitionedCommitsConverge forces a real fork: alice and bob each
// commit while partitioned and each side sends; after the heal everyone is
// on one branch and no message is lost or shown twice.
func TestPartitionedCommitsConverge(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 40*time.Second)
	am := alice.net.(*p2p.MemNode)
	am.Disconnect(bob.PeerID())
	am.Disconnect(carol.PeerID())
	e0 := groupEpoch(t, alice, g)
	if err := alice.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := bob.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both sides committed", func() error {
		for _, n := range ns {
			if groupEpoch(t, n, g) <= e0 {
				return fmt.Errorf("%s has not moved", n.self.Name)
			}
		}
		return nil
	})
	if _, err := alice.Send(ctx, g, "from alice in the partition"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Send(ctx, g, "from carol in the partition"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // past finality age on each side
	for _, p := range []*Node{bob, carol} {
		if err := alice.Connect(ctx, p.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "healed and converged", func() error {
		if err := sameEpoch(ns, g); err != nil {
			return err
		}
		for _, n := range ns {
			if err := hasTexts(n, g, "from alice in the partition", "from carol in the partition"); err != nil {
				return err
			}
		}
		return nil
	})
	forks := int64(0)
	for _, n := range ns {
		forks += n.Metrics().Forks
	}
	if forks == 0 {
		t.Fatal("no fork was resolved: the partition did not produce sibling commits")
	}
	if _, err := bob.Send(context.Background(), g, "after heal"); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		eventually(t, 10*time.Second, "after heal", func() error { return hasTexts(n, g, "after heal") })
	}
}
