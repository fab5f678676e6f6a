package p2p

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// boundListen returns h's listen addresses with their actual ports, so a
// host restarted on them comes back where it was.
func boundListen(t *testing.T, h *Host) []string {
	t.Helper()
	var out []string
	for _, a := range h.Libp2pHost().Network().ListenAddresses() {
		out = append(out, a.String())
	}
	if len(out) == 0 {
		t.Fatal("host has no listen addresses")
	}
	return out
}

// TestKeptPeerRedialedAfterConnectionsClosed: B closes its connections to
// A (as a NAT or a flaky link would, from outside A); A keeps B, so A
// redials it within the first backoff step. Before KeepConnected nothing
// dialed again and A stayed without B for good.
func TestKeptPeerRedialedAfterConnectionsClosed(t *testing.T) {
	checkLeaks(t)
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	connect(t, a, b)
	a.KeepConnected("g", []peer.ID{b.ID(), a.ID()})
	if s := a.KeepStatus("g"); s.Wanted != 1 || s.Connected != 1 || !s.NoneSince.IsZero() {
		t.Fatalf("status while connected: %+v", s)
	}
	waitFor(t, 5*time.Second, "A identified B", func() bool { return len(a.Libp2pHost().Peerstore().Addrs(b.ID())) > 0 })

	// A learns of the cut from its own network's notifications: the
	// redial's first step is jittered from zero up, so A may be connected
	// again before a poll of a.connected would ever see it apart (1 run in
	// about 20 under load timed out waiting for "A sees B gone").
	gone := make(chan struct{}, 16)
	a.Libp2pHost().Network().Notify(&network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == b.ID() {
			select {
			case gone <- struct{}{}:
			default:
			}
		}
	}})
	for range 3 {
		before := a.GossipStats()
		for len(gone) > 0 {
			<-gone
		}
		cut := time.Now()
		b.Libp2pHost().Network().ClosePeer(a.ID())
		select {
		case <-gone:
		case <-time.After(5 * time.Second):
			t.Fatal("A never saw its connection to B close")
		}
		// One jittered first step (at most keepBackoffMin) plus a dial.
		waitFor(t, keepBackoffMin+3*time.Second, "A redials B", func() bool { return a.connected(b.ID()) })
		t.Logf("reconnected after %v", time.Since(cut).Round(time.Millisecond))
		// The redial counts its success once Connect returns, a moment
		// after the connection is up.
		waitFor(t, 2*time.Second, "the redial counted", func() bool {
			after := a.GossipStats()
			return after.Redials > before.Redials && after.Reconnects > before.Reconnects
		})
	}
}

// TestKeptPeerFoundAfterRestartOnSamePort: B crashes; A's redials fail
// and back off; B comes back with the same key on the same ports and A
// reconnects within the backoff bound, with no discovery service at all.
// KeepStatus says since when no peer of the set was reachable.
func TestKeptPeerFoundAfterRestartOnSamePort(t *testing.T) {
	idFile := filepath.Join(t.TempDir(), "b.key")
	a := newTestHost(t, nil)
	b, err := New(func() Config { c := loopbackConfig(); c.IdentityFile = idFile; return c }())
	if err != nil {
		t.Fatal(err)
	}
	listen := boundListen(t, b)
	connect(t, a, b)
	a.KeepConnected("g", []peer.ID{b.ID()})
	waitFor(t, 5*time.Second, "A identified B", func() bool { return len(a.Libp2pHost().Peerstore().Addrs(b.ID())) > 0 })

	down := time.Now()
	b.Close()
	waitFor(t, 5*time.Second, "A sees B gone", func() bool { return !a.connected(b.ID()) })
	var s KeepStatus
	waitFor(t, 2*time.Second, "no member reachable", func() bool { s = a.KeepStatus("g"); return !s.NoneSince.IsZero() })
	if s.Wanted != 1 || s.Connected != 0 || s.NoneSince.Before(down) || s.NoneSince.After(time.Now()) {
		t.Fatalf("status while B is down: %+v (down at %v)", s, down)
	}
	// Let A's redials fail a few times, so its backoff has grown.
	waitFor(t, 10*time.Second, "failed redials", func() bool { return a.GossipStats().Redials >= 2 })

	b2, err := New(func() Config { c := loopbackConfig(); c.IdentityFile = idFile; c.Listen = listen; return c }())
	if err != nil {
		t.Fatalf("restart B on %v: %v", listen, err)
	}
	t.Cleanup(func() { b2.Close() })
	back := time.Now()
	// The wait that follows the failures so far is at most 8 s.
	waitFor(t, 10*time.Second, "A reconnects to the restarted B", func() bool { return a.connected(b2.ID()) })
	t.Logf("reconnected %v after B came back; %+v", time.Since(back).Round(time.Millisecond), a.GossipStats())
	if s := a.KeepStatus("g"); s.Connected != 1 || !s.NoneSince.IsZero() {
		t.Fatalf("status after reconnect: %+v", s)
	}
}

// TestKeepConnectedSetsReplaceAndRemove: a peer named by two sets stays
// kept until both drop it; an empty list removes a set, after which a
// closed connection stays closed.
func TestKeepConnectedSetsReplaceAndRemove(t *testing.T) {
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	connect(t, a, b)
	a.KeepConnected("g1", []peer.ID{b.ID()})
	a.KeepConnected("g2", []peer.ID{b.ID()})
	a.KeepConnected("g1", nil)
	if s := a.KeepStatus("g1"); s != (KeepStatus{}) {
		t.Fatalf("removed set: %+v", s)
	}
	b.Libp2pHost().Network().ClosePeer(a.ID())
	waitFor(t, keepBackoffMin+3*time.Second, "A redials B (kept by g2)", func() bool { return a.connected(b.ID()) })

	a.KeepConnected("g2", []peer.ID{})
	redials := a.GossipStats().Redials
	b.Libp2pHost().Network().ClosePeer(a.ID())
	time.Sleep(keepBackoffMin + time.Second)
	if a.connected(b.ID()) || a.GossipStats().Redials != redials {
		t.Fatalf("A redialed a peer no set keeps (redials %d, then %d)", redials, a.GossipStats().Redials)
	}
}

// TestKeptPeerDialedWhenAddressLearned: a kept peer with no address is
// dialed as soon as one is learned (here as mDNS or rendezvous would
// report it), not at the next backoff step.
func TestKeptPeerDialedWhenAddressLearned(t *testing.T) {
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	a.KeepConnected("g", []peer.ID{b.ID()})
	// With no address, the backoff grows; let it pass a few steps.
	time.Sleep(4 * time.Second)
	if a.connected(b.ID()) {
		t.Fatal("connected without an address")
	}
	learned := time.Now()
	a.noteAddrs(b.AddrInfo(), time.Minute)
	waitFor(t, 2*time.Second, "A dials B once its address is known", func() bool { return a.connected(b.ID()) })
	t.Logf("connected %v after the address was learned", time.Since(learned).Round(time.Millisecond))
}

func TestJitteredBounds(t *testing.T) {
	for _, d := range []time.Duration{time.Second, time.Minute} {
		for range 1000 {
			if j := jittered(d); j < d/2 || j > d {
				t.Fatalf("jittered(%v) = %v", d, j)
			}
		}
	}
}

// TestBothRestartOnRememberedPorts: B dialed A once; then both crash and
// restart, each with its key, its peer file and its old ports (as the
// daemon remembers them), with no mDNS, no DHT and no kept sets. B comes
// back first and finds A down; A, back a second later, dials B from its
// peer file (written while running, as a crash leaves it) within 10 s.
// That takes both the peer file written at identify (an inbound peer is
// in it) and B's old port.
func TestBothRestartOnRememberedPorts(t *testing.T) {
	dir := t.TempDir()
	cfg := func(name string, listen []string) Config {
		c := loopbackConfig()
		c.IdentityFile = filepath.Join(dir, name+".key")
		c.PeerstoreFile = filepath.Join(dir, name+".peers")
		c.PeerstoreSaveInterval = time.Hour
		if listen != nil {
			c.Listen = listen
		}
		return c
	}
	a, err := New(cfg("a", nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg("b", nil))
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	listenA, listenB := boundListen(t, a), boundListen(t, b)
	connect(t, b, a)
	var saved []byte
	waitFor(t, 5*time.Second, "A's peer file to list B", func() bool {
		known, _ := loadPeerFile(cfg("a", nil).PeerstoreFile, 10)
		if !slices.ContainsFunc(known, func(ai peer.AddrInfo) bool { return ai.ID == b.ID() }) {
			return false
		}
		saved, err = os.ReadFile(cfg("a", nil).PeerstoreFile)
		return err == nil
	})
	a.Close()
	b.Close()
	// A crash leaves the file as written while running, not Close's save.
	if err := os.WriteFile(cfg("a", nil).PeerstoreFile, saved, 0o600); err != nil {
		t.Fatal(err)
	}

	b2, err := New(cfg("b", listenB))
	if err != nil {
		t.Fatalf("restart B on %v: %v", listenB, err)
	}
	t.Cleanup(func() { b2.Close() })
	time.Sleep(time.Second) // B's dial of A fails: A is not back yet
	start := time.Now()
	a2, err := New(cfg("a", listenA))
	if err != nil {
		t.Fatalf("restart A on %v: %v", listenA, err)
	}
	t.Cleanup(func() { a2.Close() })
	waitFor(t, 10*time.Second, "A and B meet again", func() bool { return a2.connected(b2.ID()) && b2.connected(a2.ID()) })
	t.Logf("met again %v after A came back", time.Since(start).Round(time.Millisecond))
}

// TestAddPeerAddrsDialsKeptPeer: A keeps B but knows no address of it,
// and its next attempt is far off; B's addresses handed in by the owner
// (the node, from B's tip) make A dial B at once. An address for a peer
// that is not kept is only recorded.
func TestAddPeerAddrsDialsKeptPeer(t *testing.T) {
	checkLeaks(t)
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	c := newTestHost(t, nil)
	a.KeepConnected("g", []peer.ID{b.ID()})
	a.keep.mu.Lock()
	a.keep.peers[b.ID()].due = time.Now().Add(time.Hour)
	a.keep.peers[b.ID()].wait = keepBackoffMax
	a.keep.mu.Unlock()

	a.AddPeerAddrs(c.ID(), c.AddrInfo().Addrs, time.Hour)
	if len(a.Libp2pHost().Peerstore().Addrs(c.ID())) == 0 {
		t.Fatal("address of an unkept peer not recorded")
	}
	a.AddPeerAddrs(b.ID(), b.AddrInfo().Addrs, time.Hour)
	waitFor(t, 3*time.Second, "A dials B from the added address", func() bool { return a.connected(b.ID()) })
	time.Sleep(200 * time.Millisecond)
	if a.connected(c.ID()) {
		t.Fatal("an unkept peer was dialed")
	}
}

// farOff pushes kept peer p's next attempt an hour away with the longest
// backoff, as after a long outage.
func farOff(h *Host, p peer.ID) {
	h.keep.mu.Lock()
	defer h.keep.mu.Unlock()
	kp := h.keep.peers[p]
	kp.due = time.Now().Add(time.Hour)
	kp.wait = keepBackoffMax
}

// TestKeptPeerHintedByNews: A keeps B, knows B's address, and backed off
// far (a long outage). News of B with the same address (its tip relayed by
// another member, its mDNS answer) means B is there now: A dials it
// within keepHintJitter instead of waiting out the backoff. Before the
// hint only a new address did that, and a partition that healed without
// any address changing waited up to a minute.
func TestKeptPeerHintedByNews(t *testing.T) {
	checkLeaks(t)
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	// No address yet, so the keeper cannot dial B before it is far off;
	// then the address is known (not news: straight to the peerstore).
	a.KeepConnected("g", []peer.ID{b.ID()})
	time.Sleep(100 * time.Millisecond)
	farOff(a, b.ID())
	a.Libp2pHost().Peerstore().AddAddrs(b.ID(), b.AddrInfo().Addrs, time.Hour)

	heard := time.Now()
	a.AddPeerAddrs(b.ID(), b.AddrInfo().Addrs, time.Hour)
	waitFor(t, 3*time.Second, "A dials B on news of it", func() bool { return a.connected(b.ID()) })
	t.Logf("connected %v after the news", time.Since(heard).Round(time.Millisecond))
	if h := a.GossipStats().RedialHints; h != 1 {
		t.Fatalf("RedialHints = %d, want 1", h)
	}
}

// TestKeptPeerHintRateLimited: a peer that is alive but unreachable from
// here (its tips keep coming through others) is hinted at most once per
// keepHintEvery.
func TestKeptPeerHintRateLimited(t *testing.T) {
	now := time.Now()
	kp := &keptPeer{wait: keepBackoffMax, due: now.Add(time.Minute)}
	if !kp.hint(now) {
		t.Fatal("first hint refused")
	}
	if kp.wait != keepBackoffMin || kp.due.Sub(now) > keepHintJitter {
		t.Fatalf("after a hint: wait %v, due in %v", kp.wait, kp.due.Sub(now))
	}
	kp.due, kp.wait = now.Add(time.Minute), keepBackoffMax // the dial failed
	if kp.hint(now.Add(keepHintEvery - time.Millisecond)) {
		t.Fatal("hinted again within keepHintEvery")
	}
	if !kp.hint(now.Add(keepHintEvery)) {
		t.Fatal("not hinted after keepHintEvery")
	}
	dialing := &keptPeer{wait: keepBackoffMax, due: time.Time{}, dialing: true}
	if dialing.hint(now) {
		t.Fatal("hinted a peer being dialed")
	}
}

// TestKeptPeersHintedByAConnection: A keeps B and C and backed off far
// from both (its link was down for long). B connects to A: the network
// works again, so A dials C at once instead of waiting out C's backoff.
func TestKeptPeersHintedByAConnection(t *testing.T) {
	checkLeaks(t)
	a := newTestHost(t, nil)
	b := newTestHost(t, nil)
	c := newTestHost(t, nil)
	// No address for either yet: the keeper cannot dial them.
	a.KeepConnected("g", []peer.ID{b.ID(), c.ID()})
	time.Sleep(100 * time.Millisecond)
	farOff(a, b.ID())
	farOff(a, c.ID())
	a.Libp2pHost().Peerstore().AddAddrs(c.ID(), c.AddrInfo().Addrs, time.Hour)

	up := time.Now()
	connect(t, b, a)
	waitFor(t, 3*time.Second, "A dials C after B connected", func() bool { return a.connected(c.ID()) })
	t.Logf("A connected to C %v after B connected", time.Since(up).Round(time.Millisecond))
}
