package p2p

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// meshBackBound is how long a restarted host may take to be back in its
// neighbours' meshes: 30 heartbeats of loopbackConfig (100 ms), generous
// for a loaded 2-core machine. GossipSub's default backoffs, which a host
// that leaves its topics on Close triggers, keep it out for 10 to 77
// seconds instead.
const meshBackBound = 3 * time.Second

// meshTriangle starts hosts A and B and a host C whose identity lives in
// dir, connects them all and subscribes each to g, and waits until every
// host has both others in its mesh.
func meshTriangle(t testing.TB, g GroupID, idFile string) (a, b, c *Host, subs []Subscription) {
	t.Helper()
	a, b = newTestHost(t, nil), newTestHost(t, nil)
	c = newTestHost(t, func(cfg *Config) { cfg.IdentityFile = idFile; cfg.PeerstoreFile = idFile + ".peers" })
	hosts := []*Host{a, b, c}
	connect(t, a, b)
	connect(t, c, a)
	connect(t, c, b)
	for _, h := range hosts {
		s, err := h.Subscribe(g, nil)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	waitFor(t, 10*time.Second, "the full mesh A-B-C", func() bool { return fullMesh(g, hosts...) })
	return a, b, c, subs
}

// fullMesh reports whether each host has every other one in its mesh for g.
func fullMesh(g GroupID, hosts ...*Host) bool {
	for _, h := range hosts {
		m := h.MeshPeers(g)
		for _, o := range hosts {
			if o != h && !slices.Contains(m, o.ID()) {
				return false
			}
		}
	}
	return true
}

// restartHost starts a host with idFile's identity (the same peer ID as
// the one that was closed), connects it to peers and subscribes it to g.
// It returns the host, its subscription and when the subscription began.
func restartHost(t testing.TB, g GroupID, idFile string, peers ...*Host) (*Host, Subscription, time.Time) {
	t.Helper()
	c := newTestHost(t, func(cfg *Config) { cfg.IdentityFile = idFile; cfg.PeerstoreFile = idFile + ".peers" })
	for _, p := range peers {
		connect(t, c, p)
	}
	start := time.Now()
	s, err := c.Subscribe(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, s, start
}

// waitMeshBack waits (up to meshBackBound) until c is in the meshes of
// peers and they are in its mesh, and logs how long that took.
func waitMeshBack(t *testing.T, g GroupID, start time.Time, c *Host, peers ...*Host) {
	t.Helper()
	waitFor(t, meshBackBound, "the restarted host back in its neighbours' meshes", func() bool {
		return fullMesh(g, append([]*Host{c}, peers...)...)
	})
	t.Logf("mesh back %v after the restarted host subscribed", time.Since(start).Round(time.Millisecond))
}

// TestCleanlyClosedHostRegainsMeshAtOnce (issue 8/9): a host that is closed
// cleanly with its subscription open and restarted at once with the same
// identity is back in its neighbours' meshes within a few heartbeats, and
// a message B publishes reaches it. Close must look like a disconnect to
// the neighbours (who then forget the host without a backoff), not like
// leaving the topic (a PRUNE, which makes them refuse its GRAFTs for a
// minute).
func TestCleanlyClosedHostRegainsMeshAtOnce(t *testing.T) {
	checkLeaks(t)
	g := GroupID("restart")
	idFile := filepath.Join(t.TempDir(), "c.key")
	a, b, c, _ := meshTriangle(t, g, idFile)
	oldID := c.ID()
	prunesA, prunesB := a.GossipStats().PrunesReceived, b.GossipStats().PrunesReceived

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A and B to see C gone", func() bool {
		return !slices.Contains(a.Peers(), oldID) && !slices.Contains(b.Peers(), oldID)
	})
	if slices.Contains(a.MeshPeers(g), oldID) || slices.Contains(b.MeshPeers(g), oldID) {
		t.Fatal("C is still in a mesh after disconnecting")
	}
	if pa, pb := a.GossipStats().PrunesReceived-prunesA, b.GossipStats().PrunesReceived-prunesB; pa != 0 || pb != 0 {
		t.Fatalf("closing C sent PRUNEs (A got %d, B got %d); a restart is not a leave", pa, pb)
	}

	c2, sub, start := restartHost(t, g, idFile, a, b)
	if c2.ID() != oldID {
		t.Fatalf("restarted host has peer ID %s, want %s", c2.ID(), oldID)
	}
	waitMeshBack(t, g, start, c2, a, b)

	if err := b.Publish(context.Background(), g, []byte("after restart")); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, sub, meshBackBound); string(m.Data) != "after restart" {
		t.Fatalf("restarted host got %q, want B's message", m.Data)
	}
	for _, h := range []*Host{a, b} {
		if s, _ := h.PeerScore(oldID); s < 0 {
			t.Errorf("%s scores the restarted host %v; a restart must not be penalised", h.ID(), s)
		}
	}
}

// TestLeftTopicRejoinedSoonRegainsMesh: leaving a group (Subscription.Close)
// does tell the neighbours (PRUNE), but the backoff it asks for is short,
// so a device that rejoins the group soon after, here by restarting, is
// back in the mesh within a few heartbeats after that backoff.
func TestLeftTopicRejoinedSoonRegainsMesh(t *testing.T) {
	checkLeaks(t)
	g := GroupID("leave-rejoin")
	idFile := filepath.Join(t.TempDir(), "c.key")
	a, b, c, subs := meshTriangle(t, g, idFile)
	oldID := c.ID()

	prunesA := a.GossipStats().PrunesReceived
	if err := subs[2].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "A and B to drop C from their meshes", func() bool {
		return !slices.Contains(a.MeshPeers(g), oldID) && !slices.Contains(b.MeshPeers(g), oldID)
	})
	if a.GossipStats().PrunesReceived == prunesA {
		t.Fatal("leaving the topic sent A no PRUNE")
	}
	left := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Restart after the unsubscribe backoff C announced (whole seconds on
	// the wire) has passed at A and B.
	time.Sleep(time.Until(left.Add(unsubscribeBackoff + 100*time.Millisecond)))
	c2, _, start := restartHost(t, g, idFile, a, b)
	waitMeshBack(t, g, start, c2, a, b)
}

// TestRejoinDuringUnsubscribeBackoff: a host that rejoins while its
// neighbours still back off from its PRUNE has its GRAFTs refused; it is
// back in the mesh once the (short) prune backoff and GossipSub's slack
// for clearing backoffs have passed, not a minute later.
func TestRejoinDuringUnsubscribeBackoff(t *testing.T) {
	checkLeaks(t)
	g := GroupID("rejoin-in-backoff")
	idFile := filepath.Join(t.TempDir(), "c.key")
	a, b, c, subs := meshTriangle(t, g, idFile)
	if err := subs[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, _, start := restartHost(t, g, idFile, a, b)
	// pruneBackoff, then the 2 s slack and the every-15-heartbeats sweep
	// with which go-libp2p-pubsub clears expired backoffs.
	bound := pruneBackoff + 2*time.Second + 15*loopbackConfig().HeartbeatInterval + meshBackBound
	waitFor(t, bound, "the rejoined host back in its neighbours' meshes", func() bool {
		return fullMesh(g, c2, a, b)
	})
	t.Logf("mesh back %v after rejoining during the backoff", time.Since(start).Round(time.Millisecond))
}

// BenchmarkMeshAfterRestart measures the time from a host's Subscribe
// until it and its two neighbours have each other in their meshes, for a
// host that was closed and restarted with the same identity (restart) and
// for a host never seen before (fresh, the floor). Heartbeat 100 ms.
func BenchmarkMeshAfterRestart(b *testing.B) {
	for _, mode := range []string{"fresh", "restart"} {
		b.Run("mode="+mode, func(b *testing.B) {
			g := GroupID("bench-restart")
			idFile := filepath.Join(b.TempDir(), "c.key")
			a, bh, c, _ := meshTriangle(b, g, idFile)
			var total time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				id := c.ID()
				c.Close()
				waitFor(b, 10*time.Second, "C gone", func() bool {
					return !slices.Contains(a.Peers(), id) && !slices.Contains(bh.Peers(), id)
				})
				f := idFile
				if mode == "fresh" {
					f = filepath.Join(b.TempDir(), fmt.Sprintf("fresh-%d.key", i))
				}
				var start time.Time
				c, _, start = restartHost(b, g, f, a, bh)
				b.StartTimer()
				deadline := start.Add(30 * time.Second)
				for !fullMesh(g, c, a, bh) {
					if time.Now().After(deadline) {
						b.Fatal("no full mesh after 30 s")
					}
					time.Sleep(2 * time.Millisecond)
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-mesh")
		})
	}
}
