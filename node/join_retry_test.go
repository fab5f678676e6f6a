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

// handJoin sends bob's join request with a fresh KeyPackage to alice by
// hand, so that the test decides what happens to the stream.
func handJoin(t *testing.T, ctx context.Context, bob, alice *Node, secret [16]byte) (p2p.Stream, *mls.KeyPackageBundle) {
	t.Helper()
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
	if err := s.Send((&joinRequest{Secret: secret, KeyPackage: kpBytes}).marshal()); err != nil {
		t.Fatal(err)
	}
	return s, kp
}

// TestJoinRetryAfterDeliveredWelcomeAndDroppedLeaf is the chaos run's
// stranded joiner (issue 17), set up by droppedAfterDelivery. Bob,
// restarted, retries with the same code: he never was in the group, so he
// must be welcomed (it used to be refused as "invite code already used",
// the leaf being gone). Once he has used his leaf and left, the code is
// spent for him as before.
func TestJoinRetryAfterDeliveredWelcomeAndDroppedLeaf(t *testing.T) {
	checkLeaks(t)
	ctx := ctxT(t, 90*time.Second)
	alice, bob, carol, g, inv := droppedAfterDelivery(t, ctx)
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatalf("retry after the dropped leaf: %v", err)
	}
	bobInAndOut(t, ctx, alice, bob, carol, g)
	if _, err := bob.Join(ctx, inv.Code); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("bob reusing the code after leaving: got %v, want forbidden", err)
	}
}

// TestDroppedLeafMarkCannotUndoRemoval: after bob's leaf was dropped (as
// in the test above) he joins with a fresh code, uses his leaf and
// leaves. The first code still carries the dropped mark, but bob has been
// in the group since: the old code must not bring him back.
func TestDroppedLeafMarkCannotUndoRemoval(t *testing.T) {
	checkLeaks(t)
	ctx := ctxT(t, 90*time.Second)
	alice, bob, carol, g, inv := droppedAfterDelivery(t, ctx)
	fresh, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, fresh.Code); err != nil {
		t.Fatalf("join with a fresh code: %v", err)
	}
	bobInAndOut(t, ctx, alice, bob, carol, g)
	if _, err := bob.Join(ctx, inv.Code); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("bob reusing the old code after leaving: got %v, want forbidden", err)
	}
}

// bobInAndOut waits until all three see bob in the group once, has him
// send (using his leaf) and leave, and waits until alice sees him gone.
func bobInAndOut(t *testing.T, ctx context.Context, alice, bob, carol *Node, g api.Group) {
	t.Helper()
	ns := []*Node{alice, bob, carol}
	eventually(t, 10*time.Second, "bob in once", func() error {
		for _, n := range ns {
			if c := memberCount(n, g.ID); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(ns, g.ID)
	})
	if _, err := bob.Send(ctx, g.ID, "bob made it"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob's message", func() error { return hasTexts(alice, g.ID, "bob made it") })
	if err := bob.Leave(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	a, err := alice.lookup(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Until his removal settles it stays queued, which refuses a retry
	// by itself (retryReplacesUnused): wait, so that what is tested next
	// is the rule for a device that has no leaf.
	eventually(t, 20*time.Second, "bob's leave settled", func() error {
		if c := memberCount(alice, g.ID); c != 2 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return a.do(ctx, func() error {
			for _, it := range a.intents {
				if it.kind == intentLeave || it.kind == intentRemove {
					return fmt.Errorf("removal still queued (intent kind %d)", it.kind)
				}
			}
			return nil
		})
	})
}

// droppedAfterDelivery sets up the chaos run's stranded joiner: alice
// (admin, with carol) writes bob's Welcome to a join stream that then
// dies, so bob never processes it; bob retries with the same code,
// alice's Add replaces his unused leaf, and that stream dies too (bob
// killed mid-join, the Welcome held back because carol is cut off), so
// alice drops the new leaf as unused. It returns the nodes (all connected
// again, bob in nobody's tree), the group and bob's code.
func droppedAfterDelivery(t *testing.T, ctx context.Context) (alice, bob, carol *Node, g api.Group, inv api.Invite) {
	t.Helper()
	mn := p2p.NewMemNetwork()
	alice, bob, carol = memNode(t, mn, "alice"), memNode(t, mn, "bob"), memNode(t, mn, "carol")
	for _, n := range []*Node{bob, carol} {
		if err := n.Connect(ctx, alice.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	g = createAndJoin(t, ctx, alice, carol)
	if _, err := carol.Send(ctx, g.ID, "carol was here"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol's message", func() error { return hasTexts(alice, g.ID, "carol was here") })
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	code, err := decodeInvite(inv.Code)
	if err != nil {
		t.Fatal(err)
	}
	// First attempt: alice hands the Welcome over (the write succeeds) and
	// the stream dies; bob's device never processes it.
	s, kp := handJoin(t, ctx, bob, alice, code.Secret)
	for {
		frame, err := s.Recv()
		if err != nil {
			t.Fatalf("first attempt: %v", err)
		}
		resp, err := unmarshalJoinResponse(frame)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status == joinOK {
			break
		}
		if resp.Status != joinWaiting {
			t.Fatalf("first attempt: status %d: %s", resp.Status, resp.Reason)
		}
	}
	s.Reset()
	kp.Erase()
	eventually(t, 10*time.Second, "welcome recorded as handed over", func() error {
		alice.mu.Lock()
		defer alice.mu.Unlock()
		if pi := alice.invites[code.Secret]; pi == nil || !pi.delivered {
			return errors.New("not delivered")
		}
		return nil
	})
	// Second attempt, with carol cut off so that its Welcome cannot come
	// (the Add's epoch cannot become final): the Add is committed, then
	// bob's device dies.
	carol.net.(*p2p.MemNode).Disconnect(alice.PeerID())
	s, kp = handJoin(t, ctx, bob, alice, code.Secret)
	a, err := alice.lookup(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "second add committed", func() error {
		return a.do(ctx, func() error {
			if _, hg := a.head(); hg == nil {
				return errors.New("no head")
			} else if _, ok := unusedLeaf(hg, &kp.KeyPackage); !ok {
				return errors.New("no leaf for the second attempt yet")
			}
			return nil
		})
	})
	s.Reset()
	kp.Erase()
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	ns := []*Node{alice, carol}
	eventually(t, 3*joinKeepalive, "bob's unused leaf dropped", func() error {
		for _, n := range ns {
			if _, err := memberByName(n, g.ID, "bob"); err == nil {
				return fmt.Errorf("%s still has bob's leaf", n.self.Name)
			}
		}
		return sameEpoch(ns, g.ID)
	})
	return alice, bob, carol, g, inv
}

// TestPendingInviteDroppedRecord: version 4 invite records (dropped
// leaves) round-trip, and hostile ones (a dropped key that redeemed
// nothing, twice the same key, an empty list) are refused.
func TestPendingInviteDroppedRecord(t *testing.T) {
	p := &pendingInvite{group: "ab", expires: time.Unix(5, 0), used: true, redeemer: []byte{1}, delivered: true,
		dropped: []droppedLeaf{{key: []byte{1}, epoch: 7}}}
	got, err := unmarshalPendingInvite(p.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := got.droppedAt([]byte{1}); !ok || e != 7 || !got.delivered {
		t.Fatalf("round trip: dropped at %d (%v), delivered %v", e, ok, got.delivered)
	}
	got.undrop([]byte{1})
	if v := got.marshal()[0]; v != pendingInviteVersion {
		t.Fatalf("without dropped leaves a one-time code is written as version %d", v)
	}
	for name, bad := range map[string]*pendingInvite{
		"not a redeemer": {group: "ab", expires: time.Unix(5, 0), used: true, redeemer: []byte{1}, dropped: []droppedLeaf{{key: []byte{2}}}},
		"twice": {group: "ab", expires: time.Unix(5, 0), uses: 2, used: true, redeemer: []byte{1},
			more: []redemption{{key: []byte{2}}}, dropped: []droppedLeaf{{key: []byte{1}}, {key: []byte{1}}}},
		"unused code": {group: "ab", expires: time.Unix(5, 0), dropped: []droppedLeaf{{key: []byte{1}}}},
	} {
		if _, err := unmarshalPendingInvite(bad.marshal()); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	// An empty list is not written as version 4; forge one.
	raw := (&pendingInvite{group: "ab", expires: time.Unix(5, 0), used: true, redeemer: []byte{1}, uses: 2}).marshal()
	raw[0] = pendingInviteDropped
	raw = append(raw, 0, 0, 0, 0, 0, 0, 0, 0)
	if _, err := unmarshalPendingInvite(raw); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty dropped list: got %v, want ErrMalformed", err)
	}
}
