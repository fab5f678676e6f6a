package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"grove/mls"
	"grove/node/api"
	"grove/p2p"
)

// TestJoinRequestViaMember: bob, a member but not an admin, invites carol.
// He cannot commit the Add, so he publishes a join request; alice (the
// admin) commits it and relays the Welcome through the group; bob hands it
// to carol, who joins as a plain member and chats with everyone. A fourth
// device cannot reuse the code, and a join request whose KeyPackage is
// garbage changes nothing.
func TestJoinRequestViaMember(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	carol, dave := memNode(t, mn, "carol"), memNode(t, mn, "dave")
	ctx := ctxT(t, 60*time.Second)
	for _, n := range []*Node{carol, dave} {
		if err := n.Connect(ctx, bob.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	if groupInfo(t, bob, g).Admin {
		t.Fatal("bob should not be an admin")
	}
	before := groupEpoch(t, alice, g)

	// A member's join request with a broken KeyPackage is dropped by the
	// admin: nothing is committed.
	a, _ := bob.lookup(g)
	if _, stop, err := bob.requestJoin(ctx, a, []byte{0, 1, 0, 5, 1, 2, 3}); err != nil {
		t.Fatal(err)
	} else {
		stop(false)
	}

	inv, err := bob.Invite(ctx, g)
	if err != nil {
		t.Fatalf("member invite: %v", err)
	}
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatalf("join through a member's invite: %v", err)
	}
	all := []*Node{alice, bob, carol}
	eventually(t, 20*time.Second, "three members everywhere", func() error {
		for _, n := range all {
			if c := memberCount(n, g); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(all, g)
	})
	if e := groupEpoch(t, alice, g); e != before+1 {
		t.Fatalf("epoch moved from %d to %d; want exactly one Add", before, e)
	}
	if groupInfo(t, carol, g).Admin {
		t.Fatal("carol joined as an admin")
	}
	if _, err := carol.Send(ctx, g, "carol says hi"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{alice, bob} {
		eventually(t, 10*time.Second, "carol's message", func() error { return hasTexts(n, g, "carol says hi") })
	}
	if _, err := dave.Join(ctx, inv.Code); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("dave reusing carol's code: %v", err)
	}
}

// TestJoinRequestNeedsAnAdmin: with the only admin offline, a member's
// invite cannot complete; the joiner gets a clear timeout and nothing
// changes. Once the admin is back, the joiner's retry with the same code
// succeeds.
func TestJoinRequestNeedsAnAdmin(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	carol := memNode(t, mn, "carol")
	ctx := ctxT(t, 60*time.Second)
	if err := carol.Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	bob.net.(*p2p.MemNode).Disconnect(alice.PeerID())
	inv, err := bob.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := ctxWithTimeout(ctx, time.Second)
	_, err = carol.Join(short, inv.Code)
	cancel()
	if !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("join with the admin away: %v", err)
	}
	if c := memberCount(bob, g); c != 2 {
		t.Fatalf("bob sees %d members", c)
	}
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatalf("retry once the admin is back: %v", err)
	}
	all := []*Node{alice, bob, carol}
	eventually(t, 20*time.Second, "three members everywhere", func() error {
		for _, n := range all {
			if c := memberCount(n, g); c != 3 {
				return fmt.Errorf("%s sees %d members: %+v", n.self.Name, c, groupInfo(t, n, g))
			}
		}
		return sameEpoch(all, g)
	})
}

func ctxWithTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, d)
}

// TestCheckAddOrdersAttempts: of one device's KeyPackages only a newer one
// replaces its unused leaf; an older one (a join request that arrived
// late) is obsolete and never evicts the member; a device that is not in
// the tree is simply added; our own leaf is never replaced.
func TestCheckAddOrdersAttempts(t *testing.T) {
	mn := p2p.NewMemNetwork()
	alice, carol := memNode(t, mn, "alice"), memNode(t, mn, "carol")
	kp := func(n *Node) *mls.KeyPackageBundle {
		t.Helper()
		b, err := n.newKeyPackage()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	own, older, current, newer := kp(alice), kp(carol), kp(carol), kp(carol)
	for _, pair := range [][2]*mls.KeyPackageBundle{{older, current}, {current, newer}} {
		if pair[0].KeyPackage.LeafNode.Lifetime.NotBefore >= pair[1].KeyPackage.LeafNode.Lifetime.NotBefore {
			t.Fatal("not_before of successive key packages does not increase")
		}
	}
	g, err := mls.CreateGroup(&mls.CreateParams{Suite: DefaultCipherSuite, Own: own, Rand: rand.Reader, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, c := checkAdd(g, &current.KeyPackage); c != addNew {
		t.Fatalf("carol not in the tree: %v", c)
	}
	sc, err := g.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: current.KeyPackage}}}, Now: time.Now(), Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := sc.Merge()
	if err != nil {
		t.Fatal(err)
	}
	leaf, c := checkAdd(g2, &newer.KeyPackage)
	if c != addReplaces || leaf != 1 {
		t.Fatalf("newer attempt: leaf %d, %v; want leaf 1 replaced", leaf, c)
	}
	for _, b := range []*mls.KeyPackageBundle{older, current} {
		if _, c := checkAdd(g2, &b.KeyPackage); c != addObsolete {
			t.Fatalf("older or same attempt: %v, want obsolete", c)
		}
	}
	again := kp(alice)
	if _, c := checkAdd(g2, &again.KeyPackage); c != addObsolete {
		t.Fatalf("a key package with our own key: %v, want obsolete", c)
	}
}

// TestRelayedWelcomeOnlyFromAdmins: every member sees a join request's id;
// a Welcome relayed for it by a member who is not an admin is ignored,
// one from the admin reaches the waiting inviter.
func TestRelayedWelcomeOnlyFromAdmins(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 20*time.Second)
	ab, _ := bob.lookup(g)
	// A broken KeyPackage: the admin drops the request, so the only
	// Welcomes are the ones this test relays.
	ch, stop, err := bob.requestJoin(ctx, ab, []byte{0, 1, 0, 5, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(false)
	var id [16]byte
	bob.mu.Lock()
	for k := range bob.relays {
		id = k
	}
	bob.mu.Unlock()
	relay := func(n *Node, welcome string) {
		t.Helper()
		a, _ := n.lookup(g)
		p := &appPayload{Kind: kindWelcome, Time: time.Now(), Ref: id, Welcome: []byte(welcome)}
		p.ID[0] = welcome[0]
		if err := a.do(ctx, func() error { return a.encryptAndPublishIntent(p) }); err != nil {
			t.Fatal(err)
		}
	}
	relay(carol, "forged by carol")
	select {
	case res := <-ch:
		t.Fatalf("a non-admin's welcome was accepted: %q", res.welcome)
	case <-time.After(time.Second):
	}
	relay(alice, "from alice")
	select {
	case res := <-ch:
		if string(res.welcome) != "from alice" {
			t.Fatalf("got %q", res.welcome)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the admin's welcome did not arrive")
	}
}

// TestHostileJoinRequests: a member's join requests with a KeyPackage that
// does not parse, one whose signature is broken, and a valid one the
// group cannot take (it lacks the policy extension capability, so the
// Commit fails) change nothing and do not stall the admin: a proper join
// through the same member works afterwards with exactly one Add.
func TestHostileJoinRequests(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	carol := memNode(t, mn, "carol")
	ctx := ctxT(t, 30*time.Second)
	if err := carol.Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	before := groupEpoch(t, alice, g)
	s, _ := DefaultCipherSuite.Suite()
	mkKP := func(caps mls.Capabilities) []byte {
		t.Helper()
		sk, _ := s.GenerateSigningKey(rand.Reader)
		kp, err := mls.NewKeyPackage(&mls.KeyPackageParams{Suite: DefaultCipherSuite, Credential: mls.NewBasicCredential(carol.selfID),
			SigningKey: sk, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), Capabilities: caps, Rand: rand.Reader})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mls.NewMLSMessage(&kp.KeyPackage)
		if err != nil {
			t.Fatal(err)
		}
		b, err := msg.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	broken := mkKP(mls.Capabilities{Extensions: groveExtensions})
	broken[len(broken)-1] ^= 1 // the KeyPackage signature is last
	ab, _ := bob.lookup(g)
	for _, kp := range [][]byte{{0, 1, 0, 5, 1, 2, 3}, broken, mkKP(mls.Capabilities{})} {
		_, stop, err := bob.requestJoin(ctx, ab, kp)
		if err != nil {
			t.Fatal(err)
		}
		defer stop(false)
	}
	time.Sleep(time.Second)
	if e := groupEpoch(t, alice, g); e != before {
		t.Fatalf("a hostile join request moved alice from epoch %d to %d", before, e)
	}
	inv, err := bob.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatalf("a proper join after hostile ones: %v", err)
	}
	eventually(t, 10*time.Second, "carol in", func() error {
		if c := memberCount(alice, g); c != 3 {
			return fmt.Errorf("alice sees %d members", c)
		}
		return nil
	})
	if e := groupEpoch(t, alice, g); e != before+1 {
		t.Fatalf("epoch %d after one Add on %d", e, before)
	}
}

// TestWithdrawnJoinRequest: carol redeems bob's invite while the admin is
// out of reach and gives up. Bob withdraws his join request; when the
// admin gets both, carol's Add is never committed (or its unused leaf is
// removed again), so the group ends as it was.
func TestWithdrawnJoinRequest(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	carol := memNode(t, mn, "carol")
	ctx := ctxT(t, 60*time.Second)
	if err := carol.Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	bob.net.(*p2p.MemNode).Disconnect(alice.PeerID())
	inv, err := bob.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = carol.Join(short, inv.Code)
	cancel()
	if !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("join with the admin away: %v", err)
	}
	// Bob notices at his next keepalive to carol and withdraws.
	eventually(t, 3*joinKeepalive, "bob stops waiting", func() error {
		bob.mu.Lock()
		defer bob.mu.Unlock()
		if len(bob.relays) != 0 {
			return errors.New("bob still relays")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // the withdrawal is published by bob's actor
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	ns2 := []*Node{alice, bob}
	settled := func() error {
		for _, n := range ns2 {
			if _, err := memberByName(n, g, "carol"); err == nil {
				return fmt.Errorf("%s has a leaf for carol", n.self.Name)
			}
			if c := memberCount(n, g); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(ns2, g)
	}
	// Give alice time to catch up with bob's log (request and withdrawal).
	time.Sleep(2 * time.Second)
	eventually(t, 10*time.Second, "group as it was", settled)
	time.Sleep(time.Second)
	if err := settled(); err != nil {
		t.Fatalf("after settling: %v", err)
	}
}
