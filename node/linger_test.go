package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/p2p"
)

// queueNet is a device's network as a crash finds it: while lost is set,
// Publish returns nil with the mesh full (GossipSub queued the message) but
// nothing ever reaches the wire (the process died before its send queue
// drained). It never serves sync, so what its peers get from it comes by
// gossip alone: the message must come from the outbox, not from the log.
type queueNet struct {
	p2p.Network
	lost atomic.Bool
}

func (q *queueNet) Publish(ctx context.Context, g p2p.GroupID, data []byte) error {
	if q.lost.Load() {
		return nil
	}
	return q.Network.Publish(ctx, g, data)
}

func (q *queueNet) MeshPeers(g p2p.GroupID) []peer.ID {
	if q.lost.Load() {
		return q.Network.Peers() // the mesh looked full when it was queued
	}
	if m, ok := q.Network.(meshReporter); ok {
		return m.MeshPeers(g)
	}
	return q.Network.Peers()
}

func (q *queueNet) Serve(proto protocol.ID, h p2p.StreamHandler) {
	q.Network.Serve(proto, func(ctx context.Context, s p2p.Stream) {
		if proto == p2p.ProtocolSync {
			s.Reset()
			return
		}
		h(ctx, s)
	})
}

// queueNode starts a node whose real libp2p host (identity and peer file in
// home, so a restart keeps its peer ID) is wrapped in a queueNet.
func queueNode(t *testing.T, home, name string) (*Node, *queueNet) {
	t.Helper()
	h, err := p2p.New(p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HeartbeatInterval: 100 * time.Millisecond,
		IdentityFile: filepath.Join(home, "peer.key"), PeerstoreFile: filepath.Join(home, "peers"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	q := &queueNet{Network: h}
	cfg := Config{Home: home, Name: name, Network: q, Logger: testLogger().With("node", name)}
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
	return n, q
}

// TestSettledSendSurvivesCrashBeforeWire is the regression test for the
// crash window between a publish and the wire: bob sends on an epoch that
// is already final, so commitorder settles the message the moment it is
// published with a full mesh, but the process dies before GossipSub's
// queue drains. Its outbox entry used to be deleted right there, and the
// acknowledged message was lost (here nothing else can bring it: bob
// serves no sync). Kept for outboxLinger, it is replayed after the
// restart and reaches alice exactly once.
func TestSettledSendSurvivesCrashBeforeWire(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	bobHome := t.TempDir()
	bob, q := queueNode(t, bobHome, "bob")
	ctx := ctxT(t, 60*time.Second)
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, g.ID, "before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "before", func() error { return hasTexts(alice, g.ID, "before") })
	// The head must be final on bob: then commitorder settles a message
	// sent on it at once (OutboxDone), which is the window under test.
	eventually(t, 10*time.Second, "bob's head final", func() error {
		if e, r := groupEpoch(t, bob, g.ID), rootEpoch(t, bob, g.ID); r != e {
			return fmt.Errorf("root %d, head %d", r, e)
		}
		return nil
	})

	q.lost.Store(true)
	const text = "queued, never on the wire"
	if _, err := bob.Send(ctx, g.ID, text); err != nil {
		t.Fatal(err)
	}
	// The crash, well within outboxLinger of the send: the connections
	// go first, as when the process dies (a clean Close would leave the
	// topic with a PRUNE, and alice's GossipSub would then refuse bob's
	// mesh for its backoff period after the restart).
	q.Network.Close()
	bob.Close()

	bob, _ = queueNode(t, bobHome, "bob")
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the message replayed to alice", func() error { return hasTexts(alice, g.ID, "before", text) })
	// Once, even though it may be re-sent (unheard at the restart) and
	// the outbox entry lingers.
	time.Sleep(outboxLinger + 3*alice.cfg.TipInterval)
	for _, n := range []*Node{alice, bob} {
		if err := hasTexts(n, g.ID, "before", text); err != nil {
			t.Fatal(err)
		}
	}
}
