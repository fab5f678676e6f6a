package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
)

// TestRealNodesEndToEnd runs three real daemons (libp2p on 127.0.0.1, Pebble
// in temporary directories): invites, chat with one ordered history, search,
// offline catch-up after 50 messages and two key rotations, removal.
func TestRealNodesEndToEnd(t *testing.T) {
	checkLeaks(t)
	homes := map[string]string{"alice": t.TempDir(), "bob": t.TempDir(), "carol": t.TempDir()}
	alice := realNode(t, homes["alice"], "alice")
	defer alice.Close()
	bob := realNode(t, homes["bob"], "bob")
	bobClosed := false
	defer func() {
		if !bobClosed {
			bob.Close()
		}
	}()
	carol := realNode(t, homes["carol"], "carol")
	defer carol.Close()
	ctx := ctxT(t, 90*time.Second)

	g, err := alice.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{bob, carol} {
		inv, err := alice.Invite(ctx, "team")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Join(ctx, inv.Code); err != nil {
			t.Fatalf("%s join: %v", n.self.Name, err)
		}
	}
	all := []*Node{alice, bob, carol}
	eventually(t, 15*time.Second, "three members everywhere", func() error {
		for _, n := range all {
			if c := memberCount(n, g.ID); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(all, g.ID)
	})
	// Members see the same fingerprints.
	am, _ := alice.Members(ctx, g.ID)
	cm, _ := carol.Members(ctx, g.ID)
	for i := range am {
		if am[i].Fingerprint != cm[i].Fingerprint || am[i].PeerID != cm[i].PeerID {
			t.Fatalf("fingerprints differ: %+v vs %+v", am[i], cm[i])
		}
	}

	var want []string
	for i, n := range all {
		for j := range 3 {
			txt := fmt.Sprintf("hello %d from %s deployment", j, n.self.Name)
			if _, err := n.Send(ctx, g.ID, txt); err != nil {
				t.Fatal(err)
			}
			want = append(want, txt)
			_ = i
		}
	}
	for _, n := range all {
		eventually(t, 15*time.Second, "chat delivered", func() error { return hasTexts(n, g.ID, want...) })
	}
	ref := texts(t, alice, g.ID)
	for _, n := range all[1:] {
		if got := texts(t, n, g.ID); !slices.Equal(got, ref) {
			t.Fatalf("%s history differs:\n%q\nvs alice\n%q", n.self.Name, got, ref)
		}
	}
	for _, n := range all {
		// The store's search can trail its view by a few milliseconds.
		eventually(t, 2*time.Second, "search", func() error {
			res, err := n.Search(ctx, api.SearchRequest{Query: "deploy*", Group: g.ID, Limit: 100})
			if err != nil {
				return err
			}
			if len(res.Hits) != len(want) {
				return fmt.Errorf("%s search found %d of %d", n.self.Name, len(res.Hits), len(want))
			}
			return nil
		})
	}

	// Bob goes offline; alice and carol send 50 and rotate twice.
	if err := bob.Close(); err != nil {
		t.Fatal(err)
	}
	bobClosed = true
	var offline []string
	for i := range 50 {
		n := alice
		if i%2 == 1 {
			n = carol
		}
		txt := fmt.Sprintf("while bob was away %d", i)
		if _, err := n.Send(ctx, g.ID, txt); err != nil {
			t.Fatal(err)
		}
		offline = append(offline, txt)
		if i == 20 || i == 40 {
			rot := alice
			if i == 40 {
				rot = carol
			}
			before := groupEpoch(t, rot, g.ID)
			if err := rot.Rotate(ctx, g.ID); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "rotation applied", func() error {
				if e := groupEpoch(t, alice, g.ID); e <= before {
					return fmt.Errorf("alice still on epoch %d", e)
				}
				if e := groupEpoch(t, carol, g.ID); e <= before {
					return fmt.Errorf("carol still on epoch %d", e)
				}
				return nil
			})
		}
	}
	for _, n := range []*Node{alice, carol} {
		eventually(t, 15*time.Second, "offline messages delivered", func() error { return hasTexts(n, g.ID, offline...) })
	}
	bob = realNode(t, homes["bob"], "bob")
	bobClosed = false
	restart := time.Now()
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if err := bob.Connect(ctx, carol.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	all = []*Node{alice, bob, carol}
	eventually(t, 15*time.Second, "bob caught up", func() error {
		if err := hasTexts(bob, g.ID, offline...); err != nil {
			return err
		}
		return sameEpoch(all, g.ID)
	})
	t.Logf("bob caught up %d messages and 2 rotations in %v", len(offline), time.Since(restart))

	// Alice removes carol.
	if err := bob.Remove(ctx, g.ID, "carol"); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("non-admin remove: %v", err)
	}
	removed, err := carol.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	removedAt := groupEpoch(t, alice, g.ID)
	if err := alice.Remove(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "carol removed", func() error {
		for _, n := range []*Node{alice, bob} {
			if c := memberCount(n, g.ID); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch([]*Node{alice, bob}, g.ID)
	})
	waitEvent(t, removed, api.EventRemoved, 15*time.Second)
	if _, err := alice.Send(ctx, g.ID, "secret after carol left"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob gets post-removal message", func() error { return hasTexts(bob, g.ID, "secret after carol left") })
	time.Sleep(300 * time.Millisecond)
	if err := hasTexts(carol, g.ID, "secret after carol left"); err == nil {
		t.Fatal("carol decrypted a message sent after her removal")
	}
	if _, err := carol.Send(ctx, g.ID, "still here?"); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("removed member send: %v", err)
	}
	// A former member is no longer served the log beyond its removal
	// (up to it, it is: removalsync.go).
	gid, _ := decodeHex(g.ID)
	if resp, err := carol.net.Request(ctx, alice.PeerID(), p2p.ProtocolSync, (&syncRequest{Group: gid, From: removedAt + 1}).marshal()); err == nil {
		t.Fatalf("former member served %d bytes", len(resp))
	}
}

func groupEpoch(t *testing.T, n *Node, id string) uint64 {
	gs, err := n.Groups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == id {
			return g.Epoch
		}
	}
	return 0
}

func waitEvent(t *testing.T, ch <-chan api.Event, kind api.EventKind, d time.Duration) api.Event {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event stream closed before %s", kind)
			}
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within %v", kind, d)
		}
	}
}
