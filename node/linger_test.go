package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/p2p"
	"grove/store"
)

// queueNet is a device's network as a crash finds it: while lost is set,
// Publish returns nil with the mesh full (GossipSub queued the message) but
// nothing ever reaches the wire (the process died before its send queue
// drained). It never serves sync, so what its peers get from it comes by
// gossip alone: the message must come from the outbox, not from the log.
type queueNet struct {
	p2p.Network
	lost atomic.Bool
	// claimMesh: the mesh looks full even with no peer connected, as it
	// may be for a publish right after a restart (the peer file's dials
	// and the first GRAFTs are fast).
	claimMesh bool
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
	if q.claimMesh {
		return []peer.ID{"claimed"}
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
func queueNode(t *testing.T, home, name string, claimMesh bool) (*Node, *queueNet) {
	t.Helper()
	h, err := p2p.New(p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HeartbeatInterval: 100 * time.Millisecond,
		IdentityFile: filepath.Join(home, "peer.key"), PeerstoreFile: filepath.Join(home, "peers"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	q := &queueNet{Network: h, claimMesh: claimMesh}
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

// crash stops n as a killed process stops: its connections drop first, so
// it says nothing more to anyone. (A clean Close leaves the group topics
// with a PRUNE, after which the peers' GossipSub refuses the restarted
// node's GRAFTs for a backoff of a minute and penalises the attempts.)
func crash(n *Node, q *queueNet) {
	q.Network.(*p2p.Host).Libp2pHost().Network().Close()
	n.Close()
	q.Network.Close()
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
	bob, q := queueNode(t, bobHome, "bob", false)
	ctx := ctxT(t, 60*time.Second)
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	g := createAndJoin(t, ctx, alice, bob)
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
	crash(bob, q) // well within outboxLinger of the send

	bob, _ = queueNode(t, bobHome, "bob", false)
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

// TestReplayWaitsUntilCaughtUp: a device restarted after a crash replays
// its outbox in the head it had, which the others may have left and
// deleted meanwhile (here alice rotated twice). Published there with a mesh
// that looked full, the entry used to count as heard, settled once that
// epoch was final and was deleted: the message was lost although it had
// been replayed. A replayed entry now counts as unheard until this device
// is caught up with a member (resendUnheard), and is then re-sent in the
// canonical head.
func TestReplayWaitsUntilCaughtUp(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	carol := realNode(t, t.TempDir(), "carol")
	defer carol.Close()
	bobHome := t.TempDir()
	bob, q := queueNode(t, bobHome, "bob", false)
	ctx := ctxT(t, 60*time.Second)
	for _, n := range []*Node{bob, carol} {
		if err := n.Connect(ctx, alice.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.Connect(ctx, carol.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, "g")
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
	eventually(t, 10*time.Second, "group formed", func() error { return sameEpoch(all, g.ID) })
	if _, err := bob.Send(ctx, g.ID, "before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "before", func() error { return hasTexts(alice, g.ID, "before") })
	e0 := groupEpoch(t, bob, g.ID)
	waitEpochFinal(t, all, g.ID, e0, e0-1)
	crash(bob, q)

	// While bob is down alice and carol move on: the epoch bob will
	// replay in is final and deleted on their side.
	for i := uint64(1); i <= 2; i++ {
		if err := alice.Rotate(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		waitEpochFinal(t, []*Node{alice, carol}, g.ID, e0+i, e0+i-1)
	}
	// What Send leaves behind when the process dies after the outbox write.
	const text = "replayed after the others moved on"
	strandInOutbox(t, bobHome, g.ID, text)

	bob, _ = queueNode(t, bobHome, "bob", true)
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{alice, carol} {
		eventually(t, 20*time.Second, "the replayed message reaches "+n.self.Name, func() error { return hasTexts(n, g.ID, text) })
	}
	time.Sleep(outboxLinger + 3*alice.cfg.TipInterval)
	for _, n := range []*Node{alice, bob, carol} {
		if err := hasTexts(n, g.ID, text); err != nil {
			t.Fatal(err)
		}
	}
}

// strandInOutbox writes a text message into the outbox of the (closed)
// node at home, as a crash right after Send's outbox write leaves it.
func strandInOutbox(t *testing.T, home, group, text string) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: filepath.Join(home, "db"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gid, err := hex.DecodeString(group)
	if err != nil {
		t.Fatal(err)
	}
	p := &appPayload{Kind: kindText, Time: time.Now().UTC(), Text: text}
	rand.Read(p.ID[:])
	if err := db.PutOutbox(store.OutboxEntry{Group: gid, ID: store.MessageID(p.ID), State: store.OutboxPending,
		Plaintext: p.marshal(), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
}
