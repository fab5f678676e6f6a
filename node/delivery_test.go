package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/p2p"
)

// groupActorOf returns n's actor for group.
func groupActorOf(t *testing.T, n *Node, group string) *groupActor {
	t.Helper()
	a, err := n.lookup(group)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// logged returns the commits and application messages n logged at epoch.
func logged(t *testing.T, n *Node, group string, epoch uint64) (commits, apps [][]byte) {
	t.Helper()
	a := groupActorOf(t, n, group)
	entries, err := n.db.LogByEpoch(a.id, epoch)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		_, _, commit, err := frameInfo(e.Message)
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			commits = append(commits, e.Message)
		} else {
			apps = append(apps, e.Message)
		}
	}
	return commits, apps
}

// deliver hands raw group messages to n's actor in this order, as gossip
// or sync would.
func deliver(t *testing.T, ctx context.Context, n *Node, group string, msgs ...[]byte) {
	t.Helper()
	a := groupActorOf(t, n, group)
	if err := a.do(ctx, func() error {
		for _, m := range msgs {
			a.receive(m)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func isolate(n *Node, others ...*Node) {
	for _, o := range others {
		n.net.(*p2p.MemNode).Disconnect(o.PeerID())
	}
}

// TestMessageBeforeItsCommitOnASibling is the regression test for the
// message loss of the testnet's concurrent scenario: alice commits and at
// once sends in her new epoch; at carol, who holds a sibling epoch of the
// same number (her own concurrent commit), the message arrives before
// alice's Commit. It used to fail to decrypt and be dropped for good (the
// sender counts it delivered once its epoch is final); it must be held and
// read once the Commit arrives.
func TestMessageBeforeItsCommitOnASibling(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 30*time.Second)
	// A joiner commits only once another member has been seen on its
	// epoch (commitorder's unconfirmed genesis): let a few tips go round.
	time.Sleep(3 * carol.cfg.TipInterval)
	// carol hears nothing but what the test hands her.
	isolate(carol, alice, bob)
	isolate(alice, carol)
	isolate(bob, carol)
	e0 := groupEpoch(t, alice, g)
	if err := carol.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := alice.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both committed", func() error {
		for _, n := range []*Node{alice, carol} {
			if e := groupEpoch(t, n, g); e != e0+1 {
				return fmt.Errorf("%s on epoch %d", n.self.Name, e)
			}
		}
		return nil
	})
	const text = "sent right after alice's commit"
	if _, err := alice.Send(ctx, g, text); err != nil {
		t.Fatal(err)
	}
	commits, _ := logged(t, alice, g, e0)
	_, apps := logged(t, alice, g, e0+1)
	if len(commits) != 1 || len(apps) != 1 {
		t.Fatalf("alice logged %d commits on epoch %d and %d messages on %d, want 1 and 1", len(commits), e0, len(apps), e0+1)
	}
	// The message first, then the Commit that creates its epoch.
	deliver(t, ctx, carol, g, apps[0], commits[0])
	eventually(t, 5*time.Second, "carol reads the early message", func() error { return hasTexts(carol, g, text) })
}

// TestHeldBuffer covers the bounds of the buffer of messages waiting for
// their epoch.
func TestHeldBuffer(t *testing.T) {
	b := newHeldBuffer(3, 10)
	h := func(i byte) [32]byte { return [32]byte{i} }
	b.add(h(1), 5, []byte{1})
	b.add(h(1), 5, []byte{1}) // held once
	b.add(h(2), 6, []byte{2})
	b.add(h(3), 5, []byte{3})
	if b.len() != 3 {
		t.Fatalf("len %d, want 3", b.len())
	}
	b.add(h(4), 7, []byte{4}) // full: the oldest (1) makes room
	if got := b.take(5); len(got) != 1 || got[0][0] != 3 {
		t.Fatalf("take(5) = %v, want [[3]]", got)
	}
	b.add(h(1), 5, []byte{1}) // evicted before, so held again
	b.prune(7)                // epochs 5 and 6 are final
	if b.len() != 1 {
		t.Fatalf("after prune len %d, want 1", b.len())
	}
	if got := b.take(7); len(got) != 1 || got[0][0] != 4 {
		t.Fatalf("take(7) = %v", got)
	}
	b.add(h(5), 9, []byte{5})
	b.reset()
	if b.len() != 0 || len(b.hashes) != 0 {
		t.Fatal("reset left entries")
	}
	b.add(h(5), 9, []byte{5})
	if b.len() != 1 {
		t.Fatal("a message dropped by reset cannot be held again")
	}
	// The byte bound: 10 bytes in all, oldest dropped first.
	b.add(h(6), 9, make([]byte, 6))
	b.add(h(7), 9, make([]byte, 4)) // 1+6+4 > 10: the 1-byte one goes
	if b.len() != 2 || b.bytes != 10 {
		t.Fatalf("len %d, bytes %d; want 2 and 10", b.len(), b.bytes)
	}
	b.add(h(8), 9, make([]byte, 11)) // larger than the whole buffer
	if b.len() != 2 {
		t.Fatal("an oversized message displaced others")
	}
	if got := b.take(9); len(got) != 2 || b.bytes != 0 {
		t.Fatalf("take(9) = %d messages, %d bytes left", len(got), b.bytes)
	}
}

// cutNet drops gossip and refuses streams between peers on different
// sides of a partition, without disconnecting them (as a lossy link or a
// firewall would: no connection event announces the heal).
type cutNet struct {
	p2p.Network
	cut *partition
}

type partition struct {
	mu   sync.Mutex
	side map[peer.ID]int
}

func (p *partition) set(sides ...[]*Node) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.side = map[peer.ID]int{}
	for i, s := range sides {
		for _, n := range s {
			p.side[n.PeerID()] = i + 1
		}
	}
}

func (p *partition) apart(a, b peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.side[a] != p.side[b]
}

func (c *cutNet) Subscribe(g p2p.GroupID, v p2p.Validator) (p2p.Subscription, error) {
	return c.Network.Subscribe(g, func(ctx context.Context, from peer.ID, data []byte) p2p.ValidationResult {
		if c.cut.apart(c.ID(), from) {
			return p2p.Ignore
		}
		return v(ctx, from, data)
	})
}

func (c *cutNet) Serve(proto protocol.ID, h p2p.StreamHandler) {
	c.Network.Serve(proto, func(ctx context.Context, s p2p.Stream) {
		if c.cut.apart(c.ID(), s.RemotePeer()) {
			s.Reset()
			return
		}
		h(ctx, s)
	})
}

func (c *cutNet) OpenStream(ctx context.Context, p peer.ID, proto protocol.ID) (p2p.Stream, error) {
	if c.cut.apart(c.ID(), p) {
		return nil, errors.New("partitioned")
	}
	return c.Network.OpenStream(ctx, p, proto)
}

func (c *cutNet) Request(ctx context.Context, p peer.ID, proto protocol.ID, req []byte) ([]byte, error) {
	if c.cut.apart(c.ID(), p) {
		return nil, errors.New("partitioned")
	}
	return c.Network.Request(ctx, p, proto, req)
}

// TestHealedPartitionOneSideChatOnly is the regression test for the loss
// at a partition's heal: one side commits, the other only chats in the
// epoch both sides still share. After the heal nothing tells the committing
// side that it lacks anything (the others' tips name epochs it holds, and
// no connection event fires), so it used to finalise that epoch without
// ever fetching what was said on the other side.
func TestHealedPartitionOneSideChatOnly(t *testing.T) {
	// Room to heal inside the window; a short grace after the last
	// witness, far below the periodic anti-entropy (ten tips).
	cutOneSideChats(t, 3*time.Second, 150*time.Millisecond, time.Second)
}

// cutGroup builds a group of the named members on a MemNetwork whose links
// the returned partition can cut, with the given finality timing.
func cutGroup(t *testing.T, age, grace time.Duration, names ...string) (*p2p.MemNetwork, []*Node, string, *partition) {
	t.Helper()
	cut := &partition{}
	mn, ns, g := wrappedMemGroup(t, func(_ string, net p2p.Network, cfg *Config) p2p.Network {
		cfg.FinalityAge, cfg.FinalityGrace = age, grace
		return &cutNet{Network: net, cut: cut}
	}, names...)
	return mn, ns, g, cut
}

// cutOneSideChats: alice and bob are cut off from carol and dave; alice
// commits, carol sends in the epoch both sides still share; after hold the
// cut heals and everyone must have carol's message.
func cutOneSideChats(t *testing.T, age, grace, hold time.Duration) {
	checkLeaks(t)
	_, ns, g, cut := cutGroup(t, age, grace, "alice", "bob", "carol", "dave")
	ctx := ctxT(t, 40*time.Second)
	alice, bob, carol, dave := ns[0], ns[1], ns[2], ns[3]
	cut.set([]*Node{alice, bob}, []*Node{carol, dave})
	e0 := groupEpoch(t, alice, g)
	if err := alice.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	const text = "from carol while cut off"
	if _, err := carol.Send(ctx, g, text); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice's side committed", func() error {
		for _, n := range []*Node{alice, bob} {
			if e := groupEpoch(t, n, g); e != e0+1 {
				return fmt.Errorf("%s on epoch %d", n.self.Name, e)
			}
		}
		return nil
	})
	// Gossip reaches dave asynchronously: Send returns once carol's writes
	// are durable, not once dave has the message.
	eventually(t, 5*time.Second, "carol's message at dave before the heal", func() error { return hasTexts(dave, g, text) })
	time.Sleep(hold) // long enough for the sides to lose touch (a few tips)
	cut.set()        // heal: everyone on one side
	eventually(t, 10*time.Second, "one group again", func() error { return sameEpoch(ns, g) })
	for _, n := range ns {
		eventually(t, 5*time.Second, "carol's message everywhere", func() error { return hasTexts(n, g, text) })
	}
}

// TestLongPartitionNoResendToNewMember: as TestLongPartitionOneSideChatOnly,
// but alice's side adds erin while cut off. Carol's message was written for
// the members she knew: re-sending it in an epoch with erin would leak it to
// someone her side never vetted, so it is flagged for carol instead.
func TestLongPartitionNoResendToNewMember(t *testing.T) {
	checkLeaks(t)
	mn, ns, g, cut := cutGroup(t, 400*time.Millisecond, 100*time.Millisecond, "alice", "bob", "carol", "dave")
	alice, bob, carol, dave := ns[0], ns[1], ns[2], ns[3]
	ctx := ctxT(t, 40*time.Second)
	cut.set([]*Node{alice, bob}, []*Node{carol, dave})
	const text = "from carol while cut off"
	m, err := carol.Send(ctx, g, text)
	if err != nil {
		t.Fatal(err)
	}
	// erin comes up on alice's side and joins there.
	mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Home: t.TempDir(), Name: "erin", Network: &cutNet{Network: mnode, cut: cut}, Logger: testLogger().With("node", "erin")}
	testTiming(&cfg)
	cfg.FinalityAge, cfg.FinalityGrace = 400*time.Millisecond, 100*time.Millisecond
	erin, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := erin.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		erin.Close()
		mnode.Close()
	})
	cut.set([]*Node{alice, bob, erin}, []*Node{carol, dave})
	for _, n := range ns {
		if err := erin.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := alice.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := erin.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cut.set()
	all := append(ns, erin)
	eventually(t, 10*time.Second, "one group again", func() error { return sameEpoch(all, g) })
	eventually(t, 5*time.Second, "carol's message flagged", func() error {
		ms, err := carol.Log(ctx, g, 100)
		if err != nil {
			return err
		}
		for _, x := range ms {
			if x.ID == m.ID && x.Orphaned {
				return nil
			}
		}
		return fmt.Errorf("carol's message %s not flagged", m.ID)
	})
	time.Sleep(5 * carol.cfg.TipInterval) // room for a wrong re-send to arrive
	for _, n := range []*Node{alice, bob, erin} {
		if hasTexts(n, g, text) == nil {
			t.Errorf("%s got carol's message, re-sent into an epoch with a member her side never knew", n.self.Name)
		}
	}
	if err := hasTexts(dave, g, text); err != nil {
		t.Error(err)
	}
}

// TestLongPartitionOneSideChatOnly: as above, but the cut outlasts the
// finality age, so alice's side has deleted the shared epoch before it
// could read carol's message there. Carol's side made no commit, so no
// branch lost and no rejoin re-sends anything; carol must re-send what she
// wrote while cut off, once she sees that the others hold that epoch final.
func TestLongPartitionOneSideChatOnly(t *testing.T) {
	cutOneSideChats(t, 400*time.Millisecond, 100*time.Millisecond, 1500*time.Millisecond)
}

// TestCommitFromBeforeJoinIgnored is the regression test for a returning
// member that stopped following the group: GossipSub handed it, on
// rejoining the topic, commits (and tips) seconds old from before it had
// joined, and commitorder took a commit on an unknown parent below its root
// as proof that its chain had diverged. The same happened in the split-brain
// test to a member of the winning half, fed by a deep sync the very commit
// that had welcomed it (a Welcome's genesis does not record it), which then
// rejoined the losing half. A commit whose parent predates the member's
// first epoch must not reach commitorder at all.
func TestCommitFromBeforeJoinIgnored(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, carol := ns[0], ns[2]
	ctx := ctxT(t, 20*time.Second)
	// alice's Add of bob, before carol joined, and the Add that welcomed
	// carol (whose parent her genesis does not record).
	early, _ := logged(t, alice, g, 0)
	joining, _ := logged(t, alice, g, 1)
	commits := append(early, joining...)
	if len(commits) != 2 {
		t.Fatalf("alice logged %d commits on epochs 0 and 1, want 2", len(commits))
	}
	a := groupActorOf(t, carol, g)
	var floor uint64
	var before, after []byte
	if err := a.do(ctx, func() error {
		floor = a.floor
		var err error
		if before, err = a.co.MarshalBinary(); err != nil {
			return err
		}
		for _, c := range commits {
			a.receive(c)
		}
		after, err = a.co.MarshalBinary()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if floor != 2 {
		t.Fatalf("carol's floor %d, want 2 (she joined at epoch 2)", floor)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a commit from before carol joined changed her commit-order state")
	}
}

// TestStaleOrReplayedTipIgnored: a tip older than the finality age, or not
// newer than the member's last one, is not taken as the member's state.
func TestStaleOrReplayedTipIgnored(t *testing.T) {
	_, ns, g := memGroup(t, "alice", "bob")
	alice := ns[0]
	a := groupActorOf(t, alice, g)
	bob := []byte("bob's identity")
	ctx := ctxT(t, 10*time.Second)
	var got []bool
	if err := a.do(ctx, func() error {
		now := alice.cfg.Clock.Now()
		at := func(d time.Duration) uint64 { return uint64(now.Add(d).UnixNano()) }
		got = []bool{
			a.freshTip(bob, at(-a.tipMaxAge-time.Second)), // seconds older than the window
			a.freshTip(bob, at(-time.Millisecond)),        // current
			a.freshTip(bob, at(-time.Millisecond)),        // the same tip again
			a.freshTip(bob, at(-2*time.Millisecond)),      // an older one, late
			a.freshTip(bob, at(0)),                        // the next one
			a.freshTip(bob, ^uint64(0)),                   // absurd time: no overflow
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []bool{false, true, false, false, true, false}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("tip %d: fresh %v, want %v", i, got[i], want[i])
		}
	}
}
