package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"grove/p2p"
)

// benchGroup is memGroup for benchmarks: alice creates a group on a
// MemNetwork and invites the others.
func benchGroup(b *testing.B, names ...string) ([]*Node, string) {
	b.Helper()
	mn := p2p.NewMemNetwork()
	var ns []*Node
	for _, name := range names {
		mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
		if err != nil {
			b.Fatal(err)
		}
		cfg := Config{Home: b.TempDir(), Name: name, Network: mnode, Logger: testLogger()}
		testTiming(&cfg)
		n, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			n.Close()
			mnode.Close()
		})
		ns = append(ns, n)
	}
	ctx := context.Background()
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			if err := ns[i].Connect(ctx, ns[j].AddrInfo()); err != nil {
				b.Fatal(err)
			}
		}
	}
	gi, err := ns[0].CreateGroup(ctx, "g")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range ns[1:] {
		inv, err := ns[0].Invite(ctx, gi.ID)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.Join(ctx, inv.Code); err != nil {
			b.Fatal(err)
		}
	}
	benchWait(b, "group formed", func() error { return sameEpoch(ns, gi.ID) })
	time.Sleep(3 * ns[0].cfg.TipInterval)
	return ns, gi.ID
}

func benchWait(b *testing.B, what string, cond func() error) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removedSyncMessages is how many messages the epoch a removed member
// asks for holds in BenchmarkServeRemovedSync.
const removedSyncMessages = 500

// BenchmarkServeRemovedSync: what answering a removed member costs the
// server (alice), against its floor, answering a member (bob) asking from
// the same epoch: the same log scan, plus the removed path's actor round
// trip for the span and its parse of each entry's epoch. One op is one
// request of each kind; the reported metrics are per message served.
func BenchmarkServeRemovedSync(b *testing.B) {
	ns, g := benchGroup(b, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := context.Background()
	from := groupEpoch2(b, alice, g)
	for i := range removedSyncMessages {
		if _, err := alice.Send(ctx, g, fmt.Sprintf("message %d before carol's removal", i)); err != nil {
			b.Fatal(err)
		}
	}
	carolNet := carol.net
	carol.Close()
	if err := alice.Remove(ctx, g, "carol"); err != nil {
		b.Fatal(err)
	}
	benchWait(b, "carol removed", func() error {
		if c := memberCount(alice, g); c != 2 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return nil
	})
	a, err := alice.lookup(g)
	if err != nil {
		b.Fatal(err)
	}
	gid := decodeHexB(b, g)
	req := &syncRequest{Group: gid, From: from}
	// Let re-sends and finality settle: the log must not grow meanwhile.
	time.Sleep(4 * alice.cfg.FinalityAge)
	var removedT, memberT time.Duration
	var removedN, memberN int
	b.ResetTimer()
	removed := func() {
		// Lift the rate limit: each op is a fresh removed member's first
		// request.
		a.do(ctx, func() error { a.removedServed = nil; return nil })
		start := time.Now()
		got, err := rawSync(ctx, carolNet, alice, req)
		removedT += time.Since(start)
		removedN += len(got)
		if err != nil || len(got) < removedSyncMessages {
			b.Fatalf("removed carol served %d messages: %v", len(got), err)
		}
	}
	member := func() {
		start := time.Now()
		got, err := rawSync(ctx, bob.net, alice, req)
		memberT += time.Since(start)
		memberN += len(got)
		if err != nil || len(got) < removedSyncMessages {
			b.Fatalf("bob served %d messages: %v", len(got), err)
		}
	}
	for i := range b.N {
		// Alternate the order: the first of a pair may find the actor
		// or the store colder.
		if i%2 == 0 {
			removed()
			member()
		} else {
			member()
			removed()
		}
	}
	// Per message served: the member is also served the epochs after
	// the removal (and alice's re-sends there), so requests differ in size.
	perRemoved := float64(removedT.Nanoseconds()) / float64(removedN)
	perMember := float64(memberT.Nanoseconds()) / float64(memberN)
	b.ReportMetric(perRemoved, "removed-ns/msg")
	b.ReportMetric(perMember, "member-ns/msg")
	b.ReportMetric(perRemoved/perMember, "removed/member")
}

func groupEpoch2(b *testing.B, n *Node, id string) uint64 {
	gs, err := n.Groups(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == id {
			return g.Epoch
		}
	}
	b.Fatalf("%s has no group %s", n.self.Name, id)
	return 0
}

func decodeHexB(b *testing.B, s string) []byte {
	v, err := decodeHex(s)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
