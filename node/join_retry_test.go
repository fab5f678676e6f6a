package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"grove/mls"
	"grove/node/api"
	"grove/p2p"
)

// TestJoinRetryAfterTimeout: bob's join gives up before his Welcome comes
// (the Add's epoch is not final yet), leaving a leaf with his signature key
// in alice's tree. Retrying — with the same code, then with a fresh one
// after the first attempt was fully committed — must work (it used to fail
// with "duplicate key in tree"), leave exactly one leaf for bob, and the
// code stays one-time for everybody else.
func TestJoinRetryAfterTimeout(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	alice := memNode(t, mn, "alice")
	bob, carol, dave := memNode(t, mn, "bob"), memNode(t, mn, "carol"), memNode(t, mn, "dave")
	ctx := ctxT(t, 60*time.Second)
	for _, n := range []*Node{bob, carol, dave} {
		if err := n.Connect(ctx, alice.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	g, inv := danglingJoin(t, ctx, alice, bob, carol)
	// Somebody else cannot use the code bob redeemed.
	if _, err := dave.Join(ctx, inv.Code); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("dave with bob's code: got %v, want already used", err)
	}
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	// Bob retries with the same code and is welcomed.
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatalf("retry with the same code: %v", err)
	}
	ns := []*Node{alice, bob}
	eventually(t, 10*time.Second, "one leaf for bob", func() error {
		for _, n := range ns {
			ms, err := n.Members(ctx, g.ID)
			if err != nil {
				return err
			}
			if len(ms) != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, len(ms))
			}
		}
		return sameEpoch(ns, g.ID)
	})
	if _, err := bob.Send(ctx, g.ID, "bob made it"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob's message", func() error { return hasTexts(alice, g.ID, "bob made it") })
	// Once the Welcome was handed over and bob's leaf is gone (he left),
	// the code is spent, even for bob: it cannot undo a removal. (Before
	// his leaf goes, bob's retry would replace his own unused leaf, see
	// retryReplacesUnused.)
	if err := bob.Leave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob's leave committed", func() error {
		if c := memberCount(alice, g.ID); c != 2 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return nil
	})
	if _, err := bob.Join(ctx, inv.Code); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("bob reusing a delivered code: got %v, want forbidden", err)
	}
	// A fresh invite re-adds bob (his old copy of the group may still be
	// on his device, waiting to see his removal: Join drops it).
	inv2, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, inv2.Code); err != nil {
		t.Fatalf("rejoin with a fresh code: %v", err)
	}
	eventually(t, 10*time.Second, "bob back once", func() error {
		for _, n := range ns {
			if c := memberCount(n, g.ID); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(ns, g.ID)
	})
}

// memNodeWith is memNode with a configuration change.
func memNodeWith(t *testing.T, mn *p2p.MemNetwork, name string, change func(*Config)) *Node {
	t.Helper()
	mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Home: t.TempDir(), Name: name, Network: mnode, Logger: testLogger().With("node", name)}
	testTiming(&cfg)
	change(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		mnode.Close()
	})
	return n
}

// TestKeyPackageProtocolNotServed: /grove/keypackage/1 is not offered (a
// device's KeyPackage enters a group only with its own join request), so
// asking for one is refused at protocol negotiation, for members too.
func TestKeyPackageProtocolNotServed(t *testing.T) {
	checkLeaks(t)
	_, ns, _ := memGroup(t, "alice", "bob")
	ctx := ctxT(t, 10*time.Second)
	resp, err := ns[1].net.Request(ctx, ns[0].PeerID(), p2p.ProtocolKeyPackage, []byte("key package please"))
	if !errors.Is(err, p2p.ErrNoHandler) {
		t.Fatalf("keypackage request: %d bytes, err %v; want ErrNoHandler", len(resp), err)
	}
}

// TestJoinRetryAfterLostWelcomeTwoPerson: the common case of a two-person
// group. Bob's first join request reaches alice, who commits the Add, but
// his stream breaks before he reads the Welcome. Alice's group now holds a
// leaf of bob's that nobody uses; bob's retry must still be welcomed, and
// promptly: the Welcome normally waits until the parent epoch is final,
// which here would wait for that leaf to act (welcomeEarly).
func TestJoinRetryAfterLostWelcomeTwoPerson(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	alice, bob := memNode(t, mn, "alice"), memNode(t, mn, "bob")
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
	iv, err := decodeInvite(inv.Code)
	if err != nil {
		t.Fatal(err)
	}
	// Bob's first attempt, by hand: the request goes out, then the stream
	// breaks.
	kp, err := bob.newKeyPackage()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mls.NewMLSMessage(&kp.KeyPackage)
	if err != nil {
		t.Fatal(err)
	}
	kpBytes, err := msg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := bob.net.OpenStream(ctx, alice.PeerID(), p2p.ProtocolJoin)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send((&joinRequest{Secret: iv.Secret, KeyPackage: kpBytes}).marshal()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "first add committed", func() error {
		if c := memberCount(alice, g.ID); c != 2 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return nil
	})
	s.Reset()
	kp.Erase()
	// Whether the first Welcome was written to the stream before it broke
	// (which spends the code) is a race; a fresh code always works.
	inv, err = alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatalf("retry: %v", err)
	}
	ns := []*Node{alice, bob}
	eventually(t, 10*time.Second, "bob in once", func() error {
		for _, n := range ns {
			if c := memberCount(n, g.ID); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(ns, g.ID)
	})
	if _, err := bob.Send(ctx, g.ID, "second time lucky"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob's message", func() error { return hasTexts(alice, g.ID, "second time lucky") })
}

// TestAbandonedJoinLeafRemoved: bob gives up before his Welcome and never
// retries; alice notices (her keepalive to him fails) and removes the
// leaf his attempt left, so the group is back to its real members.
func TestAbandonedJoinLeafRemoved(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	alice, bob, carol := memNode(t, mn, "alice"), memNode(t, mn, "bob"), memNode(t, mn, "carol")
	ctx := ctxT(t, 60*time.Second)
	for _, n := range []*Node{bob, carol} {
		if err := n.Connect(ctx, alice.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	g, _ := danglingJoin(t, ctx, alice, bob, carol)
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	ns := []*Node{alice, carol}
	eventually(t, 3*joinKeepalive, "bob's unused leaf removed", func() error {
		for _, n := range ns {
			if _, err := memberByName(n, g.ID, "bob"); err == nil {
				return fmt.Errorf("%s still has bob's leaf", n.self.Name)
			}
			if c := memberCount(n, g.ID); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(ns, g.ID)
	})
}

// danglingJoin: alice creates a group with carol, who acts once and is
// then cut off from alice, so that the next epoch cannot become final
// (carol never acts on it, and finality by age needs a witness). bob's
// join with a new invite then times out before its Welcome can come,
// while alice has committed his Add anyway (his leaf is in her tree). It
// returns the group and bob's invite.
func danglingJoin(t *testing.T, ctx context.Context, alice, bob, carol *Node) (api.Group, api.Invite) {
	t.Helper()
	g := createAndJoin(t, ctx, alice, carol)
	if _, err := carol.Send(ctx, g.ID, "carol was here"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol's message", func() error { return hasTexts(alice, g.ID, "carol was here") })
	carol.net.(*p2p.MemNode).Disconnect(alice.PeerID())
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = bob.Join(short, inv.Code)
	cancel()
	if !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("bob's join: got %v, want a timeout", err)
	}
	eventually(t, 10*time.Second, "dangling add committed", func() error {
		if c := memberCount(alice, g.ID); c != 3 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return nil
	})
	return g, inv
}
