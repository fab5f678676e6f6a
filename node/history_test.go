package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"grove/account"
	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// TestHistoryForNewMembers: off by default, a new member (carol) reads
// nothing from before she joined. Bob, no admin, cannot turn it on; alice,
// the admin, sets 30 days, which every member reads from the group. Dave,
// added then, is sent the messages of the last 30 days from before he
// joined, shown as such, and not a message 40 days old.
func TestHistoryForNewMembers(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 90*time.Second)
	alice, bob := memNode(t, mn, "alice"), memNode(t, mn, "bob")
	g := createAndJoin(t, ctx, alice, bob)
	for _, s := range []struct {
		n    *Node
		text string
	}{{alice, "from alice early"}, {bob, "from bob early"}} {
		if _, err := s.n.Send(ctx, g.ID, s.text); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "both messages at alice", func() error {
		return hasTexts(alice, g.ID, "from alice early", "from bob early")
	})
	// A message of 40 days ago in alice's view.
	gid, _ := decodeHex(g.ID)
	old := store.Message{Group: gid, ID: store.MessageID{0xaa}, Time: time.Now().Add(-40 * 24 * time.Hour).UTC(), Sender: alice.selfID, Text: "forty days old", Epoch: 0}
	if _, err := alice.db.AddMessages([]store.Message{old}); err != nil {
		t.Fatal(err)
	}

	// Off by default.
	if h := groupInfo(t, alice, g.ID).HistoryForNewMembers; h != 0 {
		t.Fatalf("history for new members is %v by default", h)
	}
	carol := memNode(t, mn, "carol")
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}

	// Bob may not change it.
	if _, err := bob.RequestChange(ctx, api.ChangeRequest{Group: g.ID, Kind: api.ChangeHistory, History: 30 * 24 * time.Hour}); api.CodeOf(err) != api.CodeForbidden {
		t.Fatalf("bob changed the history setting: %v", err)
	}
	ch, err := alice.RequestChange(ctx, api.ChangeRequest{Group: g.ID, Kind: api.ChangeHistory, History: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if ch, err = alice.AwaitChange(ctx, g.ID, ch.ID, 30*time.Second); err != nil || ch.State != api.ChangeDone {
		t.Fatalf("history setting: %+v, %v", ch, err)
	}
	for _, n := range []*Node{alice, bob, carol} {
		eventually(t, 20*time.Second, "the setting at every member", func() error {
			if h := groupInfo(t, n, g.ID).HistoryForNewMembers; h != 30*24*time.Hour {
				return fmt.Errorf("%s reads %v", n.self.Name, h)
			}
			return nil
		})
	}
	// Carol, who joined while it was off, got nothing from before.
	if ts := texts(t, carol, g.ID); slices.Contains(ts, "from alice early") || slices.Contains(ts, "from bob early") {
		t.Fatalf("carol, joined with history off, reads %q", ts)
	}

	dave := memNode(t, mn, "dave")
	inv, err = alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "dave reads the history", func() error {
		return hasTexts(dave, g.ID, "from alice early", "from bob early")
	})
	ms, err := dave.Log(ctx, g.ID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Text == "forty days old" {
			t.Fatal("dave was sent a message older than 30 days")
		}
		if (m.Text == "from alice early" || m.Text == "from bob early") && !m.BeforeJoined {
			t.Fatalf("%q is not marked as from before dave joined", m.Text)
		}
	}
	// Dave's own messages still work.
	if _, err := dave.Send(ctx, g.ID, "hello from dave"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "dave's message at bob", func() error { return hasTexts(bob, g.ID, "hello from dave") })
}

// A forged history bundle for a new member is refused and stores
// nothing: sealed without the epoch's exported key, or well sealed (by a
// member) with a message of another group, from the joiner's own epoch,
// or older than the group's window.
func TestForgedMemberHistoryRefused(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 30*time.Second)
	alice, bob := memNode(t, mn, "alice"), memNode(t, mn, "bob")
	g := createAndJoin(t, ctx, alice, bob)
	a, _ := bob.lookup(g.ID)
	var (
		code  *account.LinkCode
		epoch uint64
	)
	a.do(ctx, func() error {
		_, head := a.head()
		epoch = head.Epoch()
		var err error
		code, err = historyKey(head, bob.net.ID())
		return err
	})
	if code == nil {
		t.Fatal("no key")
	}
	wrong := &account.LinkCode{Peer: code.Peer}
	rand.Read(wrong.Secret[:])
	me := []byte(bob.net.ID())
	msg := func(text string, mod func(*account.Message)) []account.Message {
		m := account.Message{Group: a.id, ID: [16]byte{text[0], text[1]}, Time: time.Now().UTC(), Sender: alice.selfID, Text: text, Epoch: epoch - 1}
		if mod != nil {
			mod(&m)
		}
		return []account.Message{m}
	}
	bundle := func(c *account.LinkCode, msgs []account.Message) frames {
		sealed, err := account.SealHistory(c, me, 0, msgs)
		if err != nil {
			t.Fatal(err)
		}
		h, e := wbuf{}, wbuf{}
		h.u8(linkHistoryHeader)
		h.u64(uint64(len(msgs)))
		e.u8(linkHistoryEnd)
		e.u64(1)
		return frames{h.b, append([]byte{linkHistoryBatch}, sealed...), e.b}
	}
	const window = 30 * 24 * time.Hour
	for name, c := range map[string]struct {
		in   frames
		want error
	}{
		"wrong key":   {bundle(wrong, msg("forged key", nil)), account.ErrForgedHistory},
		"other group": {bundle(code, msg("other group", func(m *account.Message) { m.Group = bytes.Repeat([]byte{7}, len(a.id)) })), ErrHistoryRefused},
		"own epoch":   {bundle(code, msg("own epoch", func(m *account.Message) { m.Epoch = epoch })), ErrHistoryRefused},
		"too old":     {bundle(code, msg("too old", func(m *account.Message) { m.Time = time.Now().Add(-window - 2*time.Hour) })), ErrHistoryRefused},
		"from future": {bundle(code, msg("from future", func(m *account.Message) { m.Time = time.Now().Add(3 * time.Hour) })), ErrHistoryRefused},
		"bad sender":  {bundle(code, msg("bad sender", func(m *account.Message) { m.Sender = []byte("nobody") })), ErrHistoryRefused},
		"refused":     {frames{nil}, ErrHistoryRefused},
		"cut short":   {bundle(code, msg("cut short", nil))[:2], ErrHistoryRefused},
	} {
		in := c.in
		if _, err := bob.takeMemberHistory(a, &in, epoch, window, code); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	for _, txt := range texts(t, bob, g.ID) {
		if txt != "" {
			t.Fatalf("a refused bundle stored %q", txt)
		}
	}
	// The genuine bundle is taken.
	in := bundle(code, msg("genuine", nil))
	if got, err := bob.takeMemberHistory(a, &in, epoch, window, code); got != 1 || err != nil {
		t.Fatalf("genuine history: %d, %v", got, err)
	}
	if err := hasTexts(bob, g.ID, "genuine"); err != nil {
		t.Fatal(err)
	}
}

// The policy's version 3 (rotations, history for new members) is written
// only when one is set, so the bytes of every older policy stay the same,
// and a version 3 policy with neither is refused as not canonical.
func TestPolicyVersion3(t *testing.T) {
	admins := [][]byte{[]byte("alice")}
	for _, c := range []struct {
		p       policy
		version byte
	}{
		{policy{Admins: admins, RateLimit: 8}, policyVersion},
		{policy{Admins: admins, RateLimit: 8, Name: "ops"}, policyVersionName},
		{policy{Admins: admins, RateLimit: 8, History: 30 * 24 * time.Hour}, policyVersionV3},
		{policy{Admins: admins, Name: "ops", Rotations: [][]byte{{1, 2}}, History: time.Hour}, policyVersionV3},
	} {
		b := c.p.marshal()
		if b[0] != c.version {
			t.Fatalf("%+v written as version %d, want %d", c.p, b[0], c.version)
		}
		got, err := unmarshalPolicy(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.History != c.p.History || got.Name != c.p.Name || len(got.Rotations) != len(c.p.Rotations) {
			t.Fatalf("round trip of %+v gave %+v", c.p, got)
		}
	}
	if _, err := unmarshalPolicy([]byte{3, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("version 3 with neither: %v", err)
	}
	tooLong := (&policy{Admins: admins, History: maxHistoryForNewMembers}).marshal()
	tooLong[len(tooLong)-1]++
	if _, err := unmarshalPolicy(tooLong); !errors.Is(err, ErrMalformed) {
		t.Fatalf("history beyond the bound: %v", err)
	}
}
