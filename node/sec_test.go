package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
)

// publishAs publishes an MLS message of n's head epoch on g's topic from
// n, sealed as every member seals, as a modified client would.
func publishAs(t *testing.T, ctx context.Context, n *Node, g string, data []byte) {
	t.Helper()
	a, err := n.lookup(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.do(ctx, func() error {
		eid, _ := a.head()
		env, err := a.sealIn(eid, sealedMLS, data)
		if err != nil {
			return err
		}
		return n.net.Publish(ctx, a.wire.topic, env)
	}); err != nil {
		t.Fatal(err)
	}
}

// headState runs fn on the actor with n's head epoch of g, its id, and a
// copy of it (a modified client's own mls.Group, which fn may change
// freely).
func headState(t *testing.T, ctx context.Context, n *Node, g string, fn func(eid commitorder.EpochID, head, cp *mls.Group)) {
	t.Helper()
	a, _ := n.lookup(g)
	if err := a.do(ctx, func() error {
		eid, head := a.head()
		b, err := head.MarshalBinary()
		if err != nil {
			return err
		}
		cp, err := mls.UnmarshalGroup(b)
		if err != nil {
			return err
		}
		fn(eid, head, cp)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestKeyUpdateCannotChangeIdentity: mallory, a member, sends an ordinary
// key-update Commit whose UpdatePath leaf carries a credential that looks
// like bob's ("bоb" with a Cyrillic о, and bob's peer id). A Commit must
// leave its committer's identity as it was: every member judges it
// invalid, nobody's member list shows a second bob, the group stays on its
// epoch and works on, and the rejection is counted.
func TestKeyUpdateCannotChangeIdentity(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "mallory")
	alice, bob, mallory := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 30*time.Second)
	before := groupEpoch(t, alice, g)
	fake := memberIdentity{Name: "b\u043eb", Peer: bob.PeerID()}.marshal()
	if _, err := parseIdentity(fake); err != nil {
		t.Fatalf("the forged identity must be a valid one for this test: %v", err)
	}
	var commit []byte
	var rule rejectReason
	headState(t, ctx, mallory, g, func(eid commitorder.EpochID, head, cp *mls.Group) {
		// The modified client: its own leaf in its own copy of the tree
		// claims the forged credential, which the path leaf then carries.
		cp.Tree().LeafNode(cp.OwnLeaf()).Credential.Identity = fake
		// (Framed as an honest client frames its Commits, so that only
		// the identity rule can refuse it.)
		sc, err := cp.Commit(&mls.CommitOptions{ForcePath: true, SkipCached: true, Private: true,
			AuthenticatedData: commitAD(eid, commitorder.ClassUpdate, commitorder.MemberID(mallory.selfID)), Now: time.Now(), Rand: rand.Reader})
		if err != nil {
			t.Errorf("craft commit: %v", err)
			return
		}
		commit = sc.Message
		// The node's rule on its own, whatever mls checks on receipt:
		// judged against the honest parent, the forged epoch is invalid.
		next, err := sc.Merge()
		if err != nil {
			t.Errorf("merge crafted commit: %v", err)
			return
		}
		rule = commitRule(head, next, mls.MemberSender(cp.OwnLeaf()))
	})
	if commit == nil {
		t.FailNow()
	}
	publishAs(t, ctx, mallory, g, commit)
	time.Sleep(time.Second) // past finality: an accepted commit would be applied
	for _, n := range []*Node{alice, bob} {
		if e := groupEpoch(t, n, g); e != before {
			t.Fatalf("%s moved from epoch %d to %d on the forged commit", n.self.Name, before, e)
		}
		ms, err := n.Members(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		var peers []string
		for _, m := range ms {
			if m.PeerID == bob.PeerID().String() {
				peers = append(peers, m.Name)
			}
		}
		if len(peers) != 1 {
			t.Fatalf("%s shows bob's peer id as %v", n.self.Name, peers)
		}
	}
	if rule != rejectIdentity {
		t.Fatalf("commitRule on the forged commit: %q", rule)
	}
	// (Counted as the node's rejection unless mls already refused the
	// path leaf on receipt, hence not asserted here.)
	if _, err := alice.Send(ctx, g, "still fine"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "message after the forged commit", func() error { return hasTexts(bob, g, "still fine") })
}

// TestDuplicateJoinRequestCannotFreezeAdds is the attack of issue 18: a
// member's relayed join request carries a copy of bob's identity (under
// mallory's own key). The admin must refuse it when it arrives, so that a
// third member's join later succeeds in normal time and removing mallory
// takes effect. (Before, the admin queued it, every Commit it made carried
// it and was invalid, and nothing was committed again.)
func TestDuplicateJoinRequestCannotFreezeAdds(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob", "mallory")
	alice, bob, mallory := ns[0], ns[1], ns[2]
	carol := memNode(t, mn, "carol")
	ctx := ctxT(t, 60*time.Second)
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	s, _ := DefaultCipherSuite.Suite()
	sk, _ := s.GenerateSigningKey(rand.Reader)
	kp, err := mls.NewKeyPackage(&mls.KeyPackageParams{Suite: DefaultCipherSuite, Credential: mls.NewBasicCredential(bob.selfID),
		SigningKey: sk, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		Capabilities: mls.Capabilities{Extensions: groveExtensions}, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := mls.NewMLSMessage(&kp.KeyPackage)
	kpBytes, err := msg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	am, _ := mallory.lookup(g)
	_, stop, err := mallory.requestJoin(ctx, am, kpBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(false)
	time.Sleep(time.Second) // the request reaches alice, who would commit it now

	inv, err := alice.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	_, err = carol.Join(jctx, inv.Code)
	cancel()
	if err != nil {
		t.Fatalf("carol's join after the crafted request: %v", err)
	}
	if err := alice.Remove(ctx, g, "mallory"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "mallory removed", func() error {
		for _, n := range []*Node{alice, bob, carol} {
			ms, err := n.Members(ctx, g)
			if err != nil {
				return err
			}
			var names []string
			for _, m := range ms {
				names = append(names, m.Name)
			}
			if len(ms) != 3 || strings.Contains(strings.Join(names, ","), "mallory") {
				return fmt.Errorf("%s sees %v", n.self.Name, names)
			}
		}
		return nil
	})
}

// TestAddConflict: no Add may give two members one identity or one peer
// id; the same device (same signature key) is checkAdd's business.
func TestAddConflict(t *testing.T) {
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 20*time.Second)
	s, _ := DefaultCipherSuite.Suite()
	mk := func(id []byte) *mls.KeyPackage {
		sk, _ := s.GenerateSigningKey(rand.Reader)
		kp, err := mls.NewKeyPackage(&mls.KeyPackageParams{Suite: DefaultCipherSuite, Credential: mls.NewBasicCredential(id),
			SigningKey: sk, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), Rand: rand.Reader})
		if err != nil {
			t.Fatal(err)
		}
		return &kp.KeyPackage
	}
	carolPeer := memberIdentity{Name: "carol", Peer: alice.PeerID()}.marshal()
	stranger := memNode(t, p2p.NewMemNetwork(), "carol")
	// Identity version 1: a version 2 identity would carry a certificate
	// of the stranger's own key, which mk does not use.
	ok1, ok2 := mk(memberIdentity{Name: "carol", Peer: stranger.PeerID()}.marshal()), mk(memberIdentity{Name: "carol", Peer: stranger.PeerID()}.marshal())
	a, _ := alice.lookup(g)
	a.do(ctx, func() error {
		_, head := a.head()
		for _, c := range []struct {
			name  string
			kp    *mls.KeyPackage
			batch []*mls.KeyPackage
			want  string
		}{
			{"copy of bob", mk(bob.selfID), nil, "same identity"},
			{"bob's peer id", mk(memberIdentity{Name: "bob2", Peer: bob.PeerID()}.marshal()), nil, "same peer id"},
			{"alice's peer id, other name", mk(carolPeer), nil, "same peer id"},
			{"new", ok1, nil, ""},
			{"twice in one commit", ok2, []*mls.KeyPackage{ok1}, "same identity"},
		} {
			got := addConflict(head, c.kp, c.batch)
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Errorf("%s: %q, want %q", c.name, got, c.want)
			}
		}
		return nil
	})
}

// TestStandaloneProposalsRefused: a non-member who knows the group id and
// epoch (both visible on the topic) sends 300 new_member_proposal Adds.
// Grove commits by value only, so members refuse them before anything is
// cached or logged: the epoch state does not grow, the log holds none of
// them, and the metrics count them.
func TestStandaloneProposalsRefused(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	outsider := memNode(t, mn, "outsider")
	ctx := ctxT(t, 60*time.Second)
	if err := outsider.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	a, _ := alice.lookup(g)
	stateSize := func() (size int, epoch uint64, logged int) {
		a.do(ctx, func() error {
			_, head := a.head()
			b, err := head.MarshalBinary()
			if err != nil {
				t.Error(err)
			}
			size, epoch = len(b), head.Epoch()
			return nil
		})
		es, err := alice.db.LogByEpoch(a.id, epoch)
		if err != nil {
			t.Fatal(err)
		}
		return size, epoch, len(es)
	}
	size0, epoch, log0 := stateSize()
	// The outsider subscribes to the topic as anyone can.
	sub, err := outsider.net.Subscribe(a.wire.topic, func(context.Context, peer.ID, []byte) p2p.ValidationResult { return p2p.Accept })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	time.Sleep(300 * time.Millisecond)
	s, _ := DefaultCipherSuite.Suite()
	const n = 300
	for i := range n {
		sk, _ := s.GenerateSigningKey(rand.Reader)
		kp, err := mls.NewKeyPackage(&mls.KeyPackageParams{Suite: DefaultCipherSuite, Credential: mls.NewBasicCredential(outsider.selfID),
			SigningKey: sk, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), Rand: rand.Reader})
		if err != nil {
			t.Fatal(err)
		}
		ac := &mls.AuthenticatedContent{WireFormat: mls.WireFormatPublicMessage, Content: mls.FramedContent{
			GroupID: a.id, Epoch: epoch, Sender: mls.Sender{Type: mls.SenderTypeNewMemberProposal},
			ContentType: mls.ContentTypeProposal,
			Proposal:    &mls.Proposal{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: kp.KeyPackage}},
		}}
		if err := ac.Sign(sk, nil); err != nil {
			t.Fatal(err)
		}
		m, _ := mls.NewMLSMessage(&mls.PublicMessage{Content: ac.Content, Auth: ac.Auth})
		data, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			// By gossip, end to end.
			if err := outsider.net.Publish(ctx, a.wire.topic, a.wire.seal(data)); err != nil {
				t.Fatal(err)
			}
		case 1:
			// By sync, which skips the gossip validator.
			a.post(func() { a.receive(data) })
		default:
			// The rest as gossip hands them to alice's group (p2p's
			// per-peer rate limit would stop one outsider sooner; an
			// attacker uses many peer ids): validator, then actor.
			if a.validate(ctx, outsider.PeerID(), a.wire.seal(data)) == p2p.Accept {
				a.post(func() { a.receive(data) })
			}
		}
	}
	time.Sleep(300 * time.Millisecond)     // the gossiped one
	a.do(ctx, func() error { return nil }) // the actor has run every post before this
	size1, epoch1, log1 := stateSize()
	if epoch1 != epoch {
		t.Fatalf("epoch moved from %d to %d", epoch, epoch1)
	}
	if size1 != size0 || log1 != log0 {
		t.Fatalf("epoch state %d -> %d bytes, log %d -> %d entries after %d proposals", size0, size1, log0, log1, n)
	}
	if c := alice.Metrics().Rejected[string(rejectProposal)]; c < n {
		t.Fatalf("alice counted %d refused proposals, want at least %d", c, n)
	}
	if _, err := bob.Send(ctx, g, "after the flood"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "message after the flood", func() error { return hasTexts(alice, g, "after the flood") })
}

// TestLookAlikeNamesShownApart: two members whose names differ only by a
// Cyrillic "а" are shown with tags in the member list and in the log, and
// after the look-alike is removed its old messages keep their tag (its
// name still looks like a member's) while the remaining alice is shown
// plainly.
func TestLookAlikeNamesShownApart(t *testing.T) {
	checkLeaks(t)
	const fake = "\u0430lice"
	_, ns, g := memGroup(t, "alice", fake)
	alice, other := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	ms, err := alice.Members(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{}
	for _, m := range ms {
		shown[m.PeerID] = m.Name
	}
	a, o := shown[alice.PeerID().String()], shown[other.PeerID().String()]
	if !strings.HasPrefix(a, "alice #") || !strings.HasPrefix(o, fake+" #") || a[len("alice"):] == o[len(fake):] {
		t.Fatalf("members shown as %q and %q", a, o)
	}
	if _, err := other.Send(ctx, g, "it is me, alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the look-alike's message", func() error { return hasTexts(alice, g, "it is me, alice") })
	sender := func() string {
		msgs, err := alice.Log(ctx, g, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Text == "it is me, alice" {
				return m.Sender
			}
		}
		return ""
	}
	if s := sender(); s != o {
		t.Fatalf("log shows the sender as %q, the member list as %q", s, o)
	}
	for _, by := range []string{fake, o} {
		res, err := alice.Search(ctx, api.SearchRequest{Query: "alice", Sender: by})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Hits) != 1 || res.Hits[0].Message.Sender != o {
			t.Fatalf("search by sender %q: %+v", by, res.Hits)
		}
	}
	if err := alice.Remove(ctx, g, o); err != nil {
		t.Fatalf("remove by the shown name: %v", err)
	}
	eventually(t, 10*time.Second, "look-alike removed", func() error {
		if c := memberCount(alice, g); c != 1 {
			return fmt.Errorf("%d members", c)
		}
		return nil
	})
	if s := sender(); s != o {
		t.Fatalf("a former member with a member's name is shown as %q, want %q", s, o)
	}
	ms, _ = alice.Members(ctx, g)
	if len(ms) != 1 || ms[0].Name != "alice" {
		t.Fatalf("members after the removal: %+v", ms)
	}
}
