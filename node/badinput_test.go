package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
)

func TestInviteCodeErrors(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	alice := memNode(t, mn, "alice")
	bob := memNode(t, mn, "bob")
	carol := memNode(t, mn, "carol")
	ctx := ctxT(t, 20*time.Second)
	g, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Malformed codes fail locally with invalid_argument.
	flipped := []byte(inv.Code)
	i := len(flipped) / 2
	if flipped[i] == 'a' {
		flipped[i] = 'b'
	} else {
		flipped[i] = 'a'
	}
	for _, code := range []string{"", "hello", "grove-", "grove-!!!!", inv.Code[:len(inv.Code)-3], string(flipped), strings.Repeat("grove-a", 1000)} {
		if _, err := bob.Join(ctx, code); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("Join(%.20q) = %v, want invalid argument", code, err)
		}
	}
	// A well-formed code with a secret alice never issued is refused by her.
	iv, err := decodeInvite(inv.Code)
	if err != nil {
		t.Fatal(err)
	}
	forged := *iv
	forged.Secret[0] ^= 1
	if _, err := bob.Join(ctx, forged.encode()); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("forged secret: %v", err)
	}
	// Expired (by the code's own date) fails locally.
	expired := *iv
	expired.Expires = time.Now().Add(-time.Minute).Truncate(time.Second)
	if _, err := bob.Join(ctx, expired.encode()); !errors.Is(err, api.ErrInvalidArgument) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	// Redeemed once, then refused for another device.
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, inv.Code); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("reused code: %v", err)
	}
	if memberCount(alice, g.ID) != 2 {
		t.Fatalf("alice has %d members", memberCount(alice, g.ID))
	}
	// Non-admins may invite; an admin commits the Add (join request):
	// TestJoinRequestViaMember.
}

func TestInviteExpiresAtInviter(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	aliceClock := &fakeClock{t: time.Now()}
	alice := memNodeClock(t, mn, "alice", aliceClock)
	bob := memNode(t, mn, "bob")
	ctx := ctxT(t, 10*time.Second)
	g, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := aliceClock.Now().Add(DefaultInviteExpiry).Truncate(time.Second); !inv.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", inv.Expires, want)
	}
	// The code still looks valid to bob (his clock), but the inviter's
	// record is what counts.
	aliceClock.Advance(DefaultInviteExpiry + time.Second)
	if _, err := bob.Join(ctx, inv.Code); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired at inviter: %v", err)
	}
	if memberCount(alice, g.ID) != 1 {
		t.Fatal("expired code changed the group")
	}
}

// TestGarbageOnStreamsAndTopic: garbage on every protocol and the topic,
// and a non-member asking to sync, change nothing and crash nothing.
func TestGarbageOnStreamsAndTopic(t *testing.T) {
	checkLeaks(t)
	mn, ns, g := memGroup(t, "alice", "bob")
	alice := ns[0]
	mallory := memNode(t, mn, "mallory")
	ctx := ctxT(t, 20*time.Second)
	if err := mallory.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	before := groupEpoch(t, alice, g)
	garbage := [][]byte{nil, {0}, {1, 2, 3}, []byte(strings.Repeat("x", 5000)), {joinVersion}, {syncVersion, 0}, {0xff, 'G', 'T', 1, 0}}
	for _, proto := range []string{string(p2p.ProtocolJoin), string(p2p.ProtocolSync), string(p2p.ProtocolKeyPackage)} {
		for _, gb := range garbage {
			resp, err := mallory.net.Request(ctx, alice.PeerID(), protocolID(proto), gb)
			if err == nil && proto == string(p2p.ProtocolJoin) {
				if r, derr := unmarshalJoinResponse(resp); derr != nil || r.Status == joinOK {
					t.Fatalf("join garbage got %v %v", r, derr)
				}
			} else if err == nil && len(resp) > 0 {
				t.Fatalf("%s answered garbage with %d bytes", proto, len(resp))
			}
		}
	}
	// A well-formed sync request from a non-member gets nothing.
	gid, _ := decodeHex(g)
	resp, err := mallory.net.Request(ctx, alice.PeerID(), p2p.ProtocolSync, (&syncRequest{Group: gid, From: 0}).marshal())
	if err == nil && len(resp) > 0 {
		t.Fatalf("non-member got %d bytes of log", len(resp))
	}
	// Garbage on the topic: mallory subscribes to the group's topic (an
	// outsider it leaked to) and publishes junk, tips and replays, in the
	// clear and sealed as a holder of the group secret would.
	ma := mallory.net.(*p2p.MemNode)
	aa, err := alice.lookup(g)
	if err != nil {
		t.Fatal(err)
	}
	topic := aa.wire.topic
	sub, err := ma.Subscribe(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, gb := range garbage {
		if len(gb) > 0 {
			ma.Publish(ctx, topic, gb)
			ma.Publish(ctx, topic, aa.wire.seal(gb))
		}
	}
	fakeTip := &tip{Group: gid, Epoch: before + 5, SigKey: make([]byte, 32), Signature: make([]byte, 64)}
	ma.Publish(ctx, topic, fakeTip.marshal())
	ma.Publish(ctx, topic, aa.wire.seal(fakeTip.marshal()))
	time.Sleep(300 * time.Millisecond)
	if _, err := ns[1].Send(ctx, g, "still fine"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "group still works", func() error { return hasTexts(alice, g, "still fine") })
	if e := groupEpoch(t, alice, g); e != before {
		t.Fatalf("epoch moved from %d to %d", before, e)
	}
}
