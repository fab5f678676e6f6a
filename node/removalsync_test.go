package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
)

// TestRemovedWhileCutOffLearnsIt: carol is cut off; alice removes her,
// then alice and bob chat and rotate twice. When carol is back she must
// end removed (not active for ever, sending into epochs nobody reads),
// without reading anything sent after her removal; alice and bob go on.
func TestRemovedWhileCutOffLearnsIt(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 60*time.Second)
	time.Sleep(3 * carol.cfg.TipInterval)
	const before = "before carol was cut off"
	if _, err := bob.Send(ctx, g, before); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol reads bob", func() error { return hasTexts(carol, g, before) })
	isolate(carol, alice, bob)
	e0 := groupEpoch(t, alice, g)
	// Sent in an epoch carol is still in: hers to read once she is back.
	const away = "while carol was away, before her removal"
	if _, err := bob.Send(ctx, g, away); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice reads bob", func() error { return hasTexts(alice, g, away) })

	pair := []*Node{alice, bob}
	removeAndSettle(t, ctx, alice, g, "carol", pair)
	var after []string
	for r := range 2 {
		for i := range 3 {
			text := fmt.Sprintf("after carol's removal, round %d message %d", r, i)
			after = append(after, text)
			if _, err := pair[i%2].Send(ctx, g, text); err != nil {
				t.Fatal(err)
			}
		}
		if err := pair[r%2].Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "rotated", func() error {
			if e := groupEpoch(t, alice, g); e != e0+2+uint64(r) {
				return fmt.Errorf("alice on epoch %d", e)
			}
			return sameEpoch(pair, g)
		})
	}
	eventually(t, 10*time.Second, "alice and bob read everything", func() error {
		for _, n := range pair {
			if err := hasTexts(n, g, after...); err != nil {
				return err
			}
		}
		return nil
	})
	// Let the removal be final everywhere (carol's old epochs deleted by
	// alice and bob), as after a long absence.
	time.Sleep(4 * alice.cfg.FinalityAge)
	if s := groupInfo(t, carol, g).State; s != api.GroupActive {
		t.Fatalf("carol, cut off, already in state %q", s)
	}

	// Carol is back.
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if err := carol.Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "carol sees she was removed", func() error {
		if s := groupInfo(t, carol, g).State; s != api.GroupRemoved {
			return fmt.Errorf("carol's state %q", s)
		}
		return nil
	})
	if _, err := carol.Send(ctx, g, "from a removed member"); err == nil {
		t.Fatal("carol could still send")
	}
	const later = "after carol came back"
	if _, err := alice.Send(ctx, g, later); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob reads alice", func() error { return hasTexts(bob, g, later) })
	time.Sleep(2 * alice.cfg.TipInterval)
	got := texts(t, carol, g)
	for _, txt := range got {
		for _, a := range append(after, later) {
			if txt == a {
				t.Fatalf("carol read %q, sent after her removal", txt)
			}
		}
	}
	if err := hasTexts(carol, g, before, away); err != nil {
		t.Fatal(err)
	}
	for _, n := range pair {
		if s := groupInfo(t, n, g).State; s != api.GroupActive || memberCount(n, g) != 2 {
			t.Fatalf("%s: state %q, %d members", n.self.Name, s, memberCount(n, g))
		}
	}
	if err := sameEpoch(pair, g); err != nil {
		t.Fatal(err)
	}
}

// rawSync sends req over /grove/sync/1 from the network of n to server and
// returns every message answered, and the error that ended the stream (nil
// on a clean end: the server answered; an error with no messages: refused).
func rawSync(ctx context.Context, from p2p.Network, server *Node, req *syncRequest) ([][]byte, error) {
	s, err := from.OpenStream(ctx, server.PeerID(), p2p.ProtocolSync)
	if err != nil {
		return nil, err
	}
	defer s.Reset()
	if err := s.Send(req.marshal()); err != nil {
		return nil, err
	}
	s.CloseWrite()
	var out [][]byte
	for {
		frame, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b, err := unmarshalSyncBatch(frame)
		if err != nil {
			return out, err
		}
		out = append(out, b.Messages...)
	}
}

// TestRemovedMemberServedOnlyItsEpochs checks what the sync server hands a
// member removed while its daemon was down, asking with hand-made
// requests: the log of the epochs it was in, up to and including the
// Commit that removed it, whatever epoch it asks from; nothing if it asks
// beyond, nothing more than once a second, and never a GroupInfo. A peer
// that was never a member still gets nothing at all.
func TestRemovedMemberServedOnlyItsEpochs(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 60*time.Second)
	time.Sleep(3 * carol.cfg.TipInterval)
	joined := groupEpoch(t, carol, g)
	gid := decodeHexT(t, g)
	// Carol's daemon stops; her network (her peer id) stays for the
	// hand-made requests below.
	carolNet := carol.net
	carol.Close()
	dave := memNode(t, mn, "dave")
	for _, n := range ns[:2] {
		if err := dave.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.Send(ctx, g, "before the removal"); err != nil {
		t.Fatal(err)
	}
	removedAt := groupEpoch(t, alice, g)
	pair := []*Node{alice, bob}
	removeAndSettle(t, ctx, alice, g, "carol", pair)
	for i := range 2 {
		if _, err := alice.Send(ctx, g, fmt.Sprintf("after the removal %d", i)); err != nil {
			t.Fatal(err)
		}
		if err := bob.Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "rotated", func() error {
			if e := groupEpoch(t, alice, g); e != removedAt+2+uint64(i) {
				return fmt.Errorf("alice on epoch %d", e)
			}
			return sameEpoch(pair, g)
		})
	}
	time.Sleep(2 * alice.cfg.FinalityAge)
	// What alice holds: the log of carol's last epoch (the removing
	// Commit and bob's message), and of the later epochs.
	var want [][]byte
	for e := joined; e <= removedAt; e++ {
		c, a := logged(t, alice, g, e)
		want = append(append(want, c...), a...)
	}
	if len(want) < 2 {
		t.Fatalf("alice logged %d messages for epochs %d..%d", len(want), joined, removedAt)
	}

	got, err := rawSync(ctx, carolNet, alice, &syncRequest{Group: gid, From: 0})
	if err != nil {
		t.Fatalf("removed carol's sync: %v (after %d messages)", err, len(got))
	}
	commits := 0
	for _, m := range got {
		_, epoch, commit, err := frameInfo(m)
		if err != nil {
			t.Fatal(err)
		}
		if epoch < joined || epoch > removedAt {
			t.Fatalf("carol (member in epochs %d..%d) was served a message of epoch %d", joined, removedAt, epoch)
		}
		if commit {
			commits++
		}
	}
	if len(got) != len(want) || commits == 0 {
		t.Fatalf("carol was served %d messages (%d commits), alice logged %d in her epochs", len(got), commits, len(want))
	}
	// At once again: refused (rate limit).
	if got, err := rawSync(ctx, carolNet, alice, &syncRequest{Group: gid, From: joined}); err == nil || len(got) != 0 {
		t.Fatalf("a second request at once: %d messages, err %v", len(got), err)
	}
	time.Sleep(removedSyncEvery + 100*time.Millisecond)
	// Beyond her removal: nothing.
	if got, err := rawSync(ctx, carolNet, bob, &syncRequest{Group: gid, From: removedAt + 1}); err == nil || len(got) != 0 {
		t.Fatalf("asking beyond the removal: %d messages, err %v", len(got), err)
	}
	// Never a GroupInfo: it would show the members after her removal.
	for _, server := range pair {
		if _, _, err := carolNetFetchGroupInfo(ctx, carolNet, server, gid); err == nil {
			t.Fatalf("%s handed removed carol a GroupInfo", server.self.Name)
		}
	}
	// Bob serves her too (he applied the same Commit).
	if got, err := rawSync(ctx, carolNet, bob, &syncRequest{Group: gid, From: removedAt}); err != nil || len(got) == 0 {
		t.Fatalf("bob's answer to removed carol: %d messages, err %v", len(got), err)
	}

	// Dave was never a member: nothing, whatever he asks.
	for _, server := range pair {
		for _, from := range []uint64{0, joined, removedAt, removedAt + 1} {
			if got, err := rawSync(ctx, dave.net, server, &syncRequest{Group: gid, From: from}); err == nil || len(got) != 0 {
				t.Fatalf("%s served never-member dave from %d: %d messages, err %v", server.self.Name, from, len(got), err)
			}
		}
		if _, _, err := dave.fetchGroupInfo(ctx, gid, server.PeerID()); err == nil {
			t.Fatalf("%s handed dave a GroupInfo", server.self.Name)
		}
	}
}

// carolNetFetchGroupInfo is fetchGroupInfo from a bare network.
func carolNetFetchGroupInfo(ctx context.Context, from p2p.Network, server *Node, gid []byte) ([]byte, [16]byte, error) {
	var eid [16]byte
	resp, err := from.Request(ctx, server.PeerID(), p2p.ProtocolSync, (&syncRequest{Kind: syncGroupInfo, Group: gid}).marshal())
	if err != nil {
		return nil, eid, err
	}
	b, err := unmarshalSyncBatch(resp)
	if err != nil {
		return nil, eid, err
	}
	if len(b.Messages) != 2 {
		return nil, eid, fmt.Errorf("%w: group info response", ErrMalformed)
	}
	return b.Messages[0], eid, nil
}

// restartMem closes n and starts it again on the same home and the same
// MemNetwork node (so the same peer id), with cfg adjusted by adjust.
func restartMem(t *testing.T, n *Node, adjust func(*Config)) *Node {
	t.Helper()
	cfg := n.cfg
	n.Close()
	if adjust != nil {
		adjust(&cfg)
	}
	nn, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := nn.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nn.Close() })
	return nn
}

// TestRemovalPendingAcrossRestart: carol has received the Commit that
// removes her, and her daemon restarts before the removal is final (her
// head is then an epoch she holds no state for). She must come back in
// the removing state, not fail to load the group, and end removed.
func TestRemovalPendingAcrossRestart(t *testing.T) {
	checkLeaks(t)
	const slow = 1500 * time.Millisecond // carol's finality age: time to restart her
	_, ns, g := wrappedMemGroup(t, func(name string, net p2p.Network, cfg *Config) p2p.Network {
		if name == "carol" {
			cfg.FinalityAge = slow
		}
		return net
	}, "alice", "bob", "carol")
	alice, carol := ns[0], ns[2]
	ctx := ctxT(t, 60*time.Second)
	if err := alice.Remove(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol receives her removal", func() error {
		if s := groupInfo(t, carol, g).State; s != api.GroupRemoving {
			return fmt.Errorf("carol's state %q", s)
		}
		return nil
	})
	carol = restartMem(t, carol, nil)
	gs, err := carol.Groups(ctx)
	if err != nil || len(gs) != 1 {
		t.Fatalf("restarted carol lists %+v (%v)", gs, err)
	}
	if s := gs[0].State; s != api.GroupRemoving && s != api.GroupRemoved {
		t.Fatalf("restarted carol's state %q", s)
	}
	if _, err := carol.Send(ctx, g, "still here?"); err == nil {
		t.Fatal("carol could send after receiving her removal")
	}
	eventually(t, 3*slow, "carol removed", func() error {
		if s := groupInfo(t, carol, g).State; s != api.GroupRemoved {
			return fmt.Errorf("carol's state %q", s)
		}
		return nil
	})
}

// TestRemovalBeatsOwnCommitWhileCutOff: carol, cut off, rotates her keys
// (a Commit only she has) while alice removes her on the same epoch. Her
// branch loses (a removal beats an update, commitorder's class): back, she
// receives the removing Commit from the sync, switches to it and ends
// removed; what she wrote on her own branch reaches nobody.
func TestRemovalBeatsOwnCommitWhileCutOff(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 60*time.Second)
	time.Sleep(3 * carol.cfg.TipInterval)
	isolate(carol, alice, bob)
	e0 := groupEpoch(t, alice, g)
	if err := carol.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol committed alone", func() error {
		if e := groupEpoch(t, carol, g); e != e0+1 {
			return fmt.Errorf("carol on epoch %d", e)
		}
		return nil
	})
	const lost = "carol on her own branch"
	if _, err := carol.Send(ctx, g, lost); err != nil {
		t.Fatal(err)
	}
	pair := []*Node{alice, bob}
	removeAndSettle(t, ctx, alice, g, "carol", pair)
	const secret = "after carol's removal"
	if _, err := bob.Send(ctx, g, secret); err != nil {
		t.Fatal(err)
	}
	if err := bob.Rotate(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice reads bob", func() error { return hasTexts(alice, g, secret) })
	time.Sleep(3 * alice.cfg.FinalityAge)

	for _, n := range pair {
		if err := carol.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "carol sees she was removed", func() error {
		if s := groupInfo(t, carol, g).State; s != api.GroupRemoved {
			return fmt.Errorf("carol's state %q", s)
		}
		return nil
	})
	if err := hasTexts(carol, g, secret); err == nil {
		t.Fatal("removed carol read a message sent after her removal")
	}
	time.Sleep(2 * alice.cfg.TipInterval)
	for _, n := range pair {
		if err := hasTexts(n, g, lost); err == nil {
			t.Fatalf("%s read what carol sent on her losing branch", n.self.Name)
		}
		if s := groupInfo(t, n, g).State; s != api.GroupActive || memberCount(n, g) != 2 {
			t.Fatalf("%s: state %q, %d members", n.self.Name, s, memberCount(n, g))
		}
	}
	if err := sameEpoch(pair, g); err != nil {
		t.Fatal(err)
	}
}

// TestMembershipHistoryDeletedWithGroup: the membership history (who was
// in the group, when) is deleted with the group's data when the device
// has left.
func TestMembershipHistoryDeletedWithGroup(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	name := membershipSetting(g)
	// Bob saw carol added after him.
	eventually(t, 5*time.Second, "bob's history", func() error {
		_, err := bob.db.Setting(name)
		return err
	})
	if err := bob.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob's copy deleted", func() error {
		if c := memberCount(alice, g); c != 2 {
			return fmt.Errorf("alice sees %d members", c)
		}
		if _, err := bob.db.Group(decodeHexT(t, g)); err == nil {
			return errors.New("bob's store still holds the group")
		}
		return nil
	})
	if _, err := bob.db.Setting(name); err == nil {
		t.Fatal("bob's membership history outlived the group")
	}
	// Alice, who removed bob, keeps his span.
	v, err := alice.db.Setting(name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := unmarshalMembershipHistory(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := h.removedRange(bob.PeerID(), 0); !ok {
		t.Fatalf("alice's history has no span for bob: %+v", h.spans)
	}
}

// TestRealRemovedWhileDownLearnsIt is the scenario on real daemons
// (libp2p on 127.0.0.1, Pebble on disk): carol's daemon is killed; bob
// writes to her and alice rotates while she is still a member, then alice
// removes her and alice and bob chat and rotate twice. Carol's daemon
// starts again, reconnects, reads what was hers and shows the group as
// removed, having read nothing sent after her removal, while alice and bob
// go on.
func TestRealRemovedWhileDownLearnsIt(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	bob := realNode(t, t.TempDir(), "bob")
	defer bob.Close()
	carolHome := t.TempDir()
	carol := realNode(t, carolHome, "carol")
	ctx := ctxT(t, 90*time.Second)
	g, err := alice.CreateGroup(ctx, "team")
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
	eventually(t, 15*time.Second, "three members", func() error {
		for _, n := range all {
			if c := memberCount(n, g.ID); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(all, g.ID)
	})
	crashReal(carol)
	pair := []*Node{alice, bob}
	// While carol is down but still a member: a message and a rotation
	// she must catch up with before her removal reaches her.
	const hers = "to carol, before her removal"
	if _, err := bob.Send(ctx, g.ID, hers); err != nil {
		t.Fatal(err)
	}
	e0 := groupEpoch(t, alice, g.ID)
	if err := alice.Rotate(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "rotated with carol down", func() error {
		if e := groupEpoch(t, alice, g.ID); e != e0+1 {
			return fmt.Errorf("alice on epoch %d", e)
		}
		return sameEpoch(pair, g.ID)
	})
	if err := alice.Remove(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "carol removed", func() error {
		for _, n := range pair {
			if c := memberCount(n, g.ID); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(pair, g.ID)
	})
	var after []string
	for r := range 2 {
		for i := range 3 {
			text := fmt.Sprintf("after carol's removal %d.%d", r, i)
			after = append(after, text)
			if _, err := pair[i%2].Send(ctx, g.ID, text); err != nil {
				t.Fatal(err)
			}
		}
		before := groupEpoch(t, alice, g.ID)
		if err := pair[r].Rotate(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "rotated", func() error {
			if e := groupEpoch(t, alice, g.ID); e <= before {
				return fmt.Errorf("alice on epoch %d", e)
			}
			return sameEpoch(pair, g.ID)
		})
	}
	for _, n := range pair {
		eventually(t, 15*time.Second, "alice and bob read everything", func() error { return hasTexts(n, g.ID, after...) })
	}
	time.Sleep(3 * alice.cfg.FinalityAge)

	carol = realNode(t, carolHome, "carol")
	defer carol.Close()
	if s := groupInfo(t, carol, g.ID).State; s != api.GroupActive {
		t.Fatalf("restarted carol in state %q before reconnecting", s)
	}
	for _, n := range pair {
		if err := carol.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "carol sees she was removed", func() error {
		if s := groupInfo(t, carol, g.ID).State; s != api.GroupRemoved {
			return fmt.Errorf("carol's state %q", s)
		}
		return nil
	})
	const later = "after carol came back"
	if _, err := bob.Send(ctx, g.ID, later); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice reads bob", func() error { return hasTexts(alice, g.ID, later) })
	time.Sleep(2 * alice.cfg.TipInterval)
	for _, txt := range append(after, later) {
		if hasTexts(carol, g.ID, txt) == nil {
			t.Fatalf("removed carol read %q", txt)
		}
	}
	if err := hasTexts(carol, g.ID, hers); err != nil {
		t.Fatal(err)
	}
	if err := sameEpoch(pair, g.ID); err != nil {
		t.Fatal(err)
	}
}

// removeAndSettle has remover remove the member named who from group g
// and waits until every node of rest (remover included) sees one member
// fewer than before, on one epoch.
func removeAndSettle(t *testing.T, ctx context.Context, remover *Node, g, who string, rest []*Node) {
	t.Helper()
	want := memberCount(remover, g) - 1
	if err := remover.Remove(ctx, g, who); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, who+" removed", func() error {
		for _, n := range rest {
			if c := memberCount(n, g); c != want {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(rest, g)
	})
}
