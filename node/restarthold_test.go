package node

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/p2p"
)

// syncGateNet holds every sync stream this node opens until open is
// closed: a first sync after a restart that completes only seconds later,
// as under load.
type syncGateNet struct {
	p2p.Network
	open chan struct{}
}

func (g *syncGateNet) OpenStream(ctx context.Context, p peer.ID, proto protocol.ID) (p2p.Stream, error) {
	if proto == p2p.ProtocolSync {
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Network.OpenStream(ctx, p, proto)
}

// gatedNode starts a node whose real libp2p host (identity and peer file
// in home) is wrapped in a syncGateNet.
func gatedNode(t *testing.T, home, name string) (*Node, *syncGateNet) {
	t.Helper()
	h, err := p2p.New(p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HeartbeatInterval: 100 * time.Millisecond,
		IdentityFile: filepath.Join(home, "peer.key"), PeerstoreFile: filepath.Join(home, "peers"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	gn := &syncGateNet{Network: h, open: make(chan struct{})}
	cfg := Config{Home: home, Name: name, Network: gn, Logger: testLogger().With("node", name)}
	testTiming(&cfg)
	n, err := New(cfg)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		h.Close()
	})
	return n, gn
}

// TestRestartKeepsEpochUntilFirstSync is testnet TestCrash's lost message
// (issue 17, 2 of 330 runs under load): bob is down while alice sends in
// epoch E; alice and carol then move to E+1. Restarted, bob learns E+1
// (here: its Commit is fed to him before he reaches anyone, as gossip
// may bring it long before the first sync completes) and finalises E by
// age. Without the restart hold, E's keys were erased then and the sync,
// which started at the new root E+1, never asked for E: alice's message
// was lost for good. With it, E is kept until the first sync after the
// restart has completed, and that sync asks from E.
func TestRestartKeepsEpochUntilFirstSync(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	carol := realNode(t, t.TempDir(), "carol")
	defer carol.Close()
	bobHome := t.TempDir()
	bob := realNode(t, bobHome, "bob")
	ctx := ctxT(t, 90*time.Second)
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{bob, carol} {
		inv, err := alice.Invite(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Join(ctx, inv.Code); err != nil {
			t.Fatal(err)
		}
	}
	all := []*Node{alice, bob, carol}
	eventually(t, 15*time.Second, "three members on one epoch", func() error {
		for _, n := range all {
			if c := memberCount(n, g.ID); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(all, g.ID)
	})
	time.Sleep(3 * alice.cfg.TipInterval) // every member seen on E
	e := groupEpoch(t, alice, g.ID)
	bob.Close()

	// Heard by carol, so alice never re-sends it (resendUnheard).
	if _, err := alice.Send(ctx, g.ID, "sent while bob was down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol has the message", func() error {
		return hasTexts(carol, g.ID, "sent while bob was down")
	})
	rotateAndWait(t, alice, g.ID, e+1, []*Node{alice, carol})
	gid := decodeHexT(t, g.ID)
	logged, err := alice.db.LogByEpoch(gid, e)
	if err != nil {
		t.Fatal(err)
	}
	var commit []byte
	for _, l := range logged {
		if _, _, isCommit, err := frameInfo(l.Message); err == nil && isCommit {
			commit = l.Message
		}
	}
	if commit == nil {
		t.Fatalf("alice's log of epoch %d has no Commit", e)
	}

	// Restarted, bob hears the others (their tips on E+1) at once, but
	// his syncs are held until he has finalised E.
	bob, gate := gatedNode(t, bobHome, "bob")
	a, err := bob.lookup(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.do(ctx, func() error { a.receive(commit); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if err := bob.Connect(ctx, carol.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob finalises epoch E", func() error {
		var root uint64
		if err := a.do(ctx, func() error { _, root = a.co.Root(); return nil }); err != nil {
			return err
		}
		if root != e+1 {
			return fmt.Errorf("bob's root is epoch %d", root)
		}
		return nil
	})
	close(gate.open)
	eventually(t, 10*time.Second, "bob has the message sent while he was down", func() error {
		return hasTexts(bob, g.ID, "sent while bob was down")
	})
	// The hold ended with that sync: E's state is gone.
	eventually(t, 5*time.Second, "the hold ends", func() error {
		var kept int
		var on bool
		if err := a.do(ctx, func() error {
			if on = a.restart != nil; on {
				kept = len(a.restart.kept)
			}
			return nil
		}); err != nil {
			return err
		}
		if on {
			return fmt.Errorf("hold still on, %d epoch(s) kept", kept)
		}
		return nil
	})
}
