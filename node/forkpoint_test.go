package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/node/api"
	"grove/p2p"
)

// peerSyncGate holds the sync streams this node opens to the peers in
// blocked until open is called: a member whose syncs from the other half
// of a healed partition complete only after it finalised the fork point,
// as under load.
type peerSyncGate struct {
	p2p.Network
	mu      sync.Mutex
	blocked map[peer.ID]bool
	opened  chan struct{}
}

func (g *peerSyncGate) OpenStream(ctx context.Context, p peer.ID, proto protocol.ID) (p2p.Stream, error) {
	g.mu.Lock()
	wait := proto == p2p.ProtocolSync && g.blocked[p]
	g.mu.Unlock()
	if wait {
		select {
		case <-g.opened:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Network.OpenStream(ctx, p, proto)
}

func (g *peerSyncGate) block(ps ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range ps {
		g.blocked[p] = true
	}
}

// TestForkPointMessagesReachWinners: a 2/2 partition that heals within
// the window. Carol, on the losing half, speaks in the fork point before
// her half's commit; only dave hears it. After the heal, alice and bob
// (whose rename beats carol's rotation: class 1 before class 2) finalise
// the fork point once everyone is seen on their branch, before their
// syncs from carol and dave complete. Carol re-sends what she said in the
// fork point in the new head when she switches (forkpoint.go), so the
// winners get it by gossip. Before, it was lost for the whole winning
// half (issue 17, testnet partition at 12 nodes, seeds 6, 7, 9, 15).
func TestForkPointMessagesReachWinners(t *testing.T) {
	checkLeaks(t)
	// A finality age long enough that only witness finality (every member
	// seen on a later epoch, then the grace) closes an epoch here.
	raw := map[string]*p2p.MemNode{}
	gates := map[string]*peerSyncGate{}
	_, ns, g := wrappedMemGroup(t, func(name string, net p2p.Network, cfg *Config) p2p.Network {
		cfg.FinalityAge = 20 * time.Second
		raw[name] = net.(*p2p.MemNode)
		gates[name] = &peerSyncGate{Network: net, blocked: map[peer.ID]bool{}, opened: make(chan struct{})}
		return gates[name]
	}, "alice", "bob", "carol", "dave")
	alice, carol, dave := ns[0], ns[2], ns[3]
	ctx := ctxT(t, 60*time.Second)
	if _, err := carol.Send(ctx, g, "before the split from carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "everyone has carol's first message", func() error {
		if err := sameEpoch(ns, g); err != nil {
			return err
		}
		for _, n := range ns {
			if err := hasTexts(n, g, "before the split from carol"); err != nil {
				return err
			}
		}
		return nil
	})
	forkEpoch := epochOf(t, ctx, alice, g)

	for _, x := range []string{"alice", "bob"} {
		for _, y := range ns[2:] {
			raw[x].Disconnect(y.PeerID())
		}
	}
	if _, err := carol.Send(ctx, g, "fork point from carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "dave hears carol", func() error { return hasTexts(dave, g, "fork point from carol") })
	if err := carol.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.RequestChange(ctx, api.ChangeRequest{Group: g, Kind: api.ChangeRename, Name: "winners"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "both halves commit", func() error {
		for _, n := range ns {
			if e := epochOf(t, ctx, n, g); e != forkEpoch+1 {
				return fmt.Errorf("%s on epoch %d", n.self.Name, e)
			}
		}
		return nil
	})
	for _, w := range []string{"alice", "bob"} {
		gates[w].block(carol.PeerID(), dave.PeerID())
	}
	for _, x := range ns[:2] {
		for _, y := range ns[2:] {
			if err := x.Connect(ctx, y.AddrInfo()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The winners close the fork point while their syncs from the losing
	// half are held.
	eventually(t, 15*time.Second, "fork point final at the winners", func() error {
		for _, n := range ns[:2] {
			if r := rootEpoch(t, n, g); r <= forkEpoch {
				return fmt.Errorf("%s's newest final epoch is %d", n.self.Name, r)
			}
		}
		return nil
	})
	for _, w := range []string{"alice", "bob"} {
		close(gates[w].opened)
	}
	eventually(t, 15*time.Second, "everyone has everything", func() error {
		if err := sameEpoch(ns, g); err != nil {
			return err
		}
		for _, n := range ns {
			if err := hasTexts(n, g, "before the split from carol", "fork point from carol"); err != nil {
				return err
			}
		}
		return nil
	})
}
