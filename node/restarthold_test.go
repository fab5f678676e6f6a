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
	"grove/store"
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

// holdScene is restartHoldScene's outcome: bob restarted, holding epoch
// e (finalised by him) while his syncs are gated.
type holdScene struct {
	alice, bob, carol *Node
	a                 *groupActor // bob's
	gate              *syncGateNet
	group             string
	e                 uint64
	bobHome           string
}

// restartHoldScene: bob is down while alice sends in epoch E; alice and
// carol then move to E+1. Restarted, bob hears the others at once (their
// tips on E+1; the Commit is fed to him, as gossip may bring it long
// before the first sync completes) but his syncs are held (gate) until
// he has finalised E by their tips: the first sync after a restart
// completing seconds later, as under load.
func restartHoldScene(t *testing.T) *holdScene {
	t.Helper()
	alice := realNode(t, t.TempDir(), "alice")
	t.Cleanup(func() { alice.Close() })
	carol := realNode(t, t.TempDir(), "carol")
	t.Cleanup(func() { carol.Close() })
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
	return &holdScene{alice: alice, bob: bob, carol: carol, a: a, gate: gate, group: g.ID, e: e, bobHome: bobHome}
}

// keptEpochs returns the epochs bob's hold keeps, and whether it is on.
func (s *holdScene) keptEpochs(t *testing.T) (kept []uint64, on bool) {
	t.Helper()
	err := s.a.do(ctxT(t, 5*time.Second), func() error {
		if on = s.a.restart != nil; on {
			for _, g := range s.a.restart.kept {
				kept = append(kept, g.Epoch())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return kept, on
}

// holdEnds waits until bob's hold is over and checks that epoch e's state
// is gone from bob's store.
func (s *holdScene) holdEnds(t *testing.T) {
	t.Helper()
	eventually(t, 10*time.Second, "the hold ends", func() error {
		if kept, on := s.keptEpochs(t); on {
			return fmt.Errorf("hold still on, keeping epochs %v", kept)
		}
		return nil
	})
	s.noStateOfE(t, s.bob.db.EpochStates)
}

func (s *holdScene) noStateOfE(t *testing.T, states func([]byte) ([]store.EpochState, error)) {
	t.Helper()
	sts, err := states(decodeHexT(t, s.group))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Epoch == s.e {
			t.Fatalf("bob's store still holds the state of epoch %d", s.e)
		}
	}
}

// TestRestartKeepsEpochUntilFirstSync is testnet TestCrash's lost message
// (issue 17, 2 of 330 runs under load), restartHoldScene. Without the
// restart hold, E's keys were erased when bob finalised it, before the
// first sync's answers came (and a sync asked for later started at the
// new root E+1): alice's message was lost for good. With it, E is kept
// until the first sync after the restart has completed, and that sync
// asks from E; then E is erased.
func TestRestartKeepsEpochUntilFirstSync(t *testing.T) {
	checkLeaks(t)
	s := restartHoldScene(t)
	if kept, _ := s.keptEpochs(t); len(kept) != 1 || kept[0] != s.e {
		t.Errorf("bob's hold keeps epochs %v, want [%d]", kept, s.e)
	}
	close(s.gate.open)
	eventually(t, 10*time.Second, "bob has the message sent while he was down", func() error {
		return hasTexts(s.bob, s.group, "sent while bob was down")
	})
	s.holdEnds(t)
}

// TestRestartHoldBounded: a restarted device that completes no sync
// (here: every sync held) does not keep a finalised epoch's keys past
// the bound.
func TestRestartHoldBounded(t *testing.T) {
	checkLeaks(t)
	s := restartHoldScene(t)
	defer close(s.gate.open)
	if kept, _ := s.keptEpochs(t); len(kept) != 1 {
		t.Fatalf("bob's hold keeps epochs %v, want [%d]", kept, s.e)
	}
	// The bound (minutes) passed.
	if err := s.a.do(ctxT(t, 5*time.Second), func() error {
		s.a.restart.deadline = s.bob.cfg.Clock.Now().Add(-time.Millisecond)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.holdEnds(t)
}

// TestRestartHoldEndsOnRemovalAndClose: the kept states go with the
// device's removal, and with a stop.
func TestRestartHoldEndsOnRemovalAndClose(t *testing.T) {
	checkLeaks(t)
	t.Run("removal", func(t *testing.T) {
		s := restartHoldScene(t)
		defer close(s.gate.open)
		if kept, _ := s.keptEpochs(t); len(kept) != 1 {
			t.Fatalf("bob's hold keeps epochs %v, want [%d]", kept, s.e)
		}
		if err := s.alice.Remove(ctxT(t, 10*time.Second), s.group, "bob"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "bob removed", func() error {
			return s.a.do(ctxT(t, 5*time.Second), func() error {
				if s.a.phase != phaseRemoved {
					return fmt.Errorf("bob is %v", s.a.phase)
				}
				return nil
			})
		})
		s.holdEnds(t)
	})
	t.Run("close", func(t *testing.T) {
		s := restartHoldScene(t)
		defer close(s.gate.open)
		if kept, _ := s.keptEpochs(t); len(kept) != 1 {
			t.Fatalf("bob's hold keeps epochs %v, want [%d]", kept, s.e)
		}
		s.bob.Close()
		withStore(t, s.bobHome, func(db *store.DB) { s.noStateOfE(t, db.EpochStates) })
	})
}
