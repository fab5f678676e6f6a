package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/p2p"
)

// deafNet is a node's network as it is right after a (re)start, while
// deaf is set: its publishes reach nobody (no mesh yet), it reports an
// empty mesh, and it serves no sync. It still receives gossip and can
// fetch, as a restarted node does.
type deafNet struct {
	p2p.Network
	deaf atomic.Bool
}

func (d *deafNet) Publish(ctx context.Context, g p2p.GroupID, data []byte) error {
	if d.deaf.Load() {
		return nil // what GossipSub does with no topic peers: nothing, no error
	}
	return d.Network.Publish(ctx, g, data)
}

func (d *deafNet) MeshPeers(p2p.GroupID) []peer.ID {
	if d.deaf.Load() {
		return nil
	}
	return d.Network.Peers()
}

func (d *deafNet) Serve(proto protocol.ID, h p2p.StreamHandler) {
	d.Network.Serve(proto, func(ctx context.Context, s p2p.Stream) {
		if d.deaf.Load() {
			s.Reset()
			return
		}
		h(ctx, s)
	})
}

// rootEpoch is the number of n's newest final epoch of group.
func rootEpoch(t *testing.T, n *Node, group string) uint64 {
	t.Helper()
	a := groupActorOf(t, n, group)
	var e uint64
	if err := a.do(context.Background(), func() error {
		_, e = a.co.Root()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

// deafGroup builds a group of the named members on a MemNetwork (the
// first creates it and invites the others); the member named deaf gets a
// deafNet.
func deafGroup(t *testing.T, deaf string, names ...string) (*p2p.MemNetwork, []*Node, string, *deafNet) {
	t.Helper()
	var dn *deafNet
	mn, ns, g := wrappedMemGroup(t, func(name string, net p2p.Network, _ *Config) p2p.Network {
		if name != deaf {
			return net
		}
		dn = &deafNet{Network: net}
		return dn
	}, names...)
	return mn, ns, g, dn
}

// waitEpochFinal waits until every node in ns is on epoch want and holds
// epoch below final (the root is past it).
func waitEpochFinal(t *testing.T, ns []*Node, g string, want, below uint64) {
	t.Helper()
	eventually(t, 10*time.Second, "epoch reached", func() error {
		for _, n := range ns {
			if e := groupEpoch(t, n, g); e != want {
				return fmt.Errorf("%s on epoch %d, want %d", n.self.Name, e, want)
			}
		}
		return nil
	})
	eventually(t, 10*time.Second, "epoch final everywhere", func() error {
		for _, n := range ns {
			if r := rootEpoch(t, n, g); r <= below {
				return fmt.Errorf("%s's root is epoch %d", n.self.Name, r)
			}
		}
		return nil
	})
}

// TestUnheardSendSurvivesFinality is the regression test for the loss of
// an acknowledged message in the testnet's crash scenario: a member sends
// while its publish reaches nobody (as right after a restart, before the
// GossipSub mesh forms), the others move on and the epoch it sent in
// becomes final everywhere. The sender used to clear the outbox entry at
// finality, so the message was left only in its own log, in an epoch the
// others no longer fetch or keep; a SIGKILL then lost even that chance. It
// must be re-sent once gossip reaches the others, and shown once.
func TestUnheardSendSurvivesFinality(t *testing.T) {
	checkLeaks(t)
	_, ns, g, deaf := deafGroup(t, "alice", "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 40*time.Second)
	e0 := groupEpoch(t, alice, g)
	deaf.deaf.Store(true)
	const text = "sent while nobody could hear"
	if _, err := alice.Send(ctx, g, text); err != nil {
		t.Fatal(err)
	}
	// The others move on twice, so the epoch alice sent in is final and
	// below everyone's root: no sync will ever fetch it again.
	for i := uint64(1); i <= 2; i++ {
		if err := bob.Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
		waitEpochFinal(t, ns, g, e0+i, e0+i-1)
	}
	if err := hasTexts(bob, g, text); err == nil {
		t.Fatal("bob has the message although alice's publish reached nobody: the test lost its point")
	}

	deaf.deaf.Store(false) // the mesh forms
	for _, n := range []*Node{bob, carol} {
		eventually(t, 10*time.Second, "the unheard message reaches "+n.self.Name, func() error { return hasTexts(n, g, text) })
	}
	// Once: later re-sends and syncs must not show it twice.
	time.Sleep(3 * alice.cfg.TipInterval)
	for _, n := range ns {
		if err := hasTexts(n, g, text); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnheardSendNotLeakedToLaterMember: a message that reached nobody is
// not re-sent to a group that has since added a member who could not have
// read it when it was written; its sender sees it flagged instead.
func TestUnheardSendNotLeakedToLaterMember(t *testing.T) {
	checkLeaks(t)
	mn, ns, g, deaf := deafGroup(t, "carol", "alice", "bob", "carol")
	alice, carol := ns[0], ns[2]
	ctx := ctxT(t, 40*time.Second)
	e0 := groupEpoch(t, alice, g)
	deaf.deaf.Store(true)
	const text = "before dave joined"
	if _, err := carol.Send(ctx, g, text); err != nil {
		t.Fatal(err)
	}
	dave := memNode(t, mn, "dave")
	for _, n := range ns {
		if err := dave.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := alice.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	waitEpochFinal(t, append(ns, dave), g, e0+1, e0)

	deaf.deaf.Store(false)
	eventually(t, 10*time.Second, "carol's message flagged", func() error {
		ms, err := carol.Log(ctx, g, 100)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Text == text && m.Orphaned {
				return nil
			}
		}
		return errors.New("not flagged")
	})
	time.Sleep(3 * alice.cfg.TipInterval)
	for _, n := range []*Node{alice, dave} {
		if err := hasTexts(n, g, text); err == nil {
			t.Fatalf("%s got a message written before dave could read the group", n.self.Name)
		}
	}
}

// refusingNet refuses the next refuse publishes the way our own topic
// check does when a burst exceeds the per-author rate limit (an error,
// nothing sent), while its mesh is not empty; while noServe is set it
// serves no sync, so what its peers get must come by gossip.
type refusingNet struct {
	p2p.Network
	refuse  atomic.Int32
	noServe atomic.Bool
}

func (r *refusingNet) Publish(ctx context.Context, g p2p.GroupID, data []byte) error {
	if r.refuse.Add(-1) >= 0 {
		return errors.New("publish: validation failed")
	}
	return r.Network.Publish(ctx, g, data)
}

func (r *refusingNet) MeshPeers(p2p.GroupID) []peer.ID { return r.Network.Peers() }

func (r *refusingNet) Serve(proto protocol.ID, h p2p.StreamHandler) {
	r.Network.Serve(proto, func(ctx context.Context, s p2p.Stream) {
		if r.noServe.Load() {
			s.Reset()
			return
		}
		h(ctx, s)
	})
}

// TestRefusedPublishResent: publishes our own topic check refused (a burst
// over the rate limit) reached nobody although the mesh was full; they are
// re-sent by gossip, not left for some later sync. Regression: they used
// to count as heard, and with no sync from the sender bob never got them.
func TestRefusedPublishResent(t *testing.T) {
	checkLeaks(t)
	var rn *refusingNet
	_, ns, g := wrappedMemGroup(t, func(name string, net p2p.Network, _ *Config) p2p.Network {
		if name != "alice" {
			return net
		}
		rn = &refusingNet{Network: net}
		return rn
	}, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	rn.noServe.Store(true)
	const sends, refused = 12, 8
	rn.refuse.Store(refused)
	var texts []string
	for i := range sends {
		text := fmt.Sprintf("burst %d", i)
		texts = append(texts, text)
		if _, err := alice.Send(ctx, g, text); err != nil {
			t.Fatal(err)
		}
	}
	// hasTexts also fails on a message shown twice.
	eventually(t, 10*time.Second, "every refused message re-sent by gossip", func() error {
		return hasTexts(bob, g, texts...)
	})
}
