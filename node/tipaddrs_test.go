package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// TestMembersConnectThroughTipAddresses: bob and carol both join through
// alice, so each learned only alice's address (from its invite code), and
// there is no mDNS and no DHT. The addresses in their tips (relayed by
// alice) let them dial each other, and once alice is gone they still talk.
// Before tips carried addresses, bob and carol never connected: all their
// traffic went through alice, and without her they could not talk at all.
func TestMembersConnectThroughTipAddresses(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	aliceClosed := false
	defer func() {
		if !aliceClosed {
			alice.Close()
		}
	}()
	bob := realNode(t, t.TempDir(), "bob")
	defer bob.Close()
	carol := realNode(t, t.TempDir(), "carol")
	defer carol.Close()
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
		iv, err := decodeInvite(inv.Code)
		if err != nil {
			t.Fatal(err)
		}
		if len(iv.Addrs) == 0 {
			t.Fatal("invite code carries no address")
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
	connected := func(a, b *Node) bool { return slices.Contains(a.net.Peers(), b.PeerID()) }
	eventually(t, 15*time.Second, "bob and carol directly connected", func() error {
		if !connected(bob, carol) || !connected(carol, bob) {
			return fmt.Errorf("bob's peers %v, carol's %v", bob.net.Peers(), carol.net.Peers())
		}
		return nil
	})

	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	aliceClosed = true
	eventually(t, 10*time.Second, "alice gone", func() error {
		for _, n := range []*Node{bob, carol} {
			if connected(n, alice) {
				return fmt.Errorf("%s still connected to alice", n.self.Name)
			}
		}
		return nil
	})
	if _, err := bob.Send(ctx, g.ID, "carol, alice is away"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Send(ctx, g.ID, "so she is, bob"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{bob, carol} {
		eventually(t, 15*time.Second, "messages delivered without alice", func() error {
			return hasTexts(n, g.ID, "carol, alice is away", "so she is, bob")
		})
	}
}

// TestTipAddressesChecked: what a tip's addresses may make this device
// record for a member: only well-formed multiaddrs of the member's own
// peer id (a trailing /p2p/ of it is dropped), none unusable.
func TestTipAddressesChecked(t *testing.T) {
	member, stranger := testPeerID(t), testPeerID(t)
	raw := [][]byte{
		mustAddr(t, "/ip4/192.0.2.1/tcp/4001").Bytes(),
		{0xff, 0xff, 0xff}, // not a multiaddr
		nil,
		mustAddr(t, "/ip4/0.0.0.0/tcp/4001").Bytes(),
		mustAddr(t, "/ip6/fe80::1/tcp/4001").Bytes(),
		mustAddr(t, "/ip4/192.0.2.2/udp/4001/quic-v1/p2p/"+member.String()).Bytes(),
		mustAddr(t, "/ip4/192.0.2.3/tcp/4001/p2p/"+stranger.String()).Bytes(),
		mustAddr(t, "/p2p/"+member.String()).Bytes(),
		mustAddr(t, "/ip4/192.0.2.4/tcp/1/p2p/"+stranger.String()+"/p2p-circuit").Bytes(),
	}
	want := []string{"/ip4/192.0.2.1/tcp/4001", "/ip4/192.0.2.2/udp/4001/quic-v1", "/ip4/192.0.2.4/tcp/1/p2p/" + stranger.String() + "/p2p-circuit"}
	if got := addrStrings(tipAddrsFor(member, raw)); !slices.Equal(got, want) {
		t.Fatalf("kept %q, want %q", got, want)
	}
}

// TestAdvertisedAddrs: what this device puts in its tips: no loopback,
// link-local or unspecified address unless loopback is all it has;
// public before private before relayed; at most maxTipAddrs; none longer
// than maxAddrLen.
func TestAdvertisedAddrs(t *testing.T) {
	relay := testPeerID(t)
	in := addrsOf(t,
		"/ip4/127.0.0.1/tcp/4001",
		"/ip6/::1/tcp/4001",
		"/ip4/192.168.1.5/tcp/4001",
		"/ip6/fe80::1/tcp/4001",
		"/ip4/0.0.0.0/tcp/4001",
		"/ip4/198.51.100.7/tcp/4001/p2p/"+relay.String()+"/p2p-circuit",
		"/ip4/203.0.113.9/udp/4001/quic-v1",
		"/ip4/203.0.113.9/udp/4001/quic-v1",
		"/dns4/example.org/tcp/4001",
	)
	var got []string
	for _, b := range advertisedAddrs(in) {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	want := []string{"/ip4/203.0.113.9/udp/4001/quic-v1", "/dns4/example.org/tcp/4001", "/ip4/192.168.1.5/tcp/4001", "/ip4/198.51.100.7/tcp/4001/p2p/" + relay.String() + "/p2p-circuit"}
	if !slices.Equal(got, want) {
		t.Fatalf("advertised %q, want %q", got, want)
	}
	loop := advertisedAddrs(addrsOf(t, "/ip4/0.0.0.0/tcp/1", "/ip4/127.0.0.1/tcp/4001"))
	if len(loop) != 1 || string(loop[0]) != string(mustAddr(t, "/ip4/127.0.0.1/tcp/4001").Bytes()) {
		t.Fatalf("loopback-only host advertised %d addresses", len(loop))
	}
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("/ip4/203.0.113.%d/tcp/4001", i))
	}
	if got := advertisedAddrs(addrsOf(t, many...)); len(got) != maxTipAddrs {
		t.Fatalf("advertised %d addresses, want %d", len(got), maxTipAddrs)
	}
	long := "/dns4/" + strings.Repeat("a", 250) + ".org/tcp/1"
	if got := advertisedAddrs(addrsOf(t, long)); len(got) != 0 {
		t.Fatalf("advertised an address of %d bytes", len(got[0]))
	}
}

// TestTipVersions: a version 1 tip (no addresses) still decodes; a tip of
// a later version is told apart from a malformed one (the validator
// ignores it rather than rejecting, which would penalise its sender); the
// addresses are signed; their number is bounded.
func TestTipVersions(t *testing.T) {
	v1 := &tip{Version: tipV1, Group: []byte("g"), Epoch: 3, SigKey: []byte("k"), Signature: []byte("s")}
	got, err := unmarshalTip(v1.marshal())
	if err != nil || got.Version != tipV1 || got.Epoch != 3 {
		t.Fatalf("v1 tip: %+v, %v", got, err)
	}
	v2 := &tip{Version: tipV2, Group: []byte("g"), Epoch: 3, SigKey: []byte("k"), Signature: []byte("s"), Addrs: [][]byte{{1, 2}}}
	got, err = unmarshalTip(v2.marshal())
	if err != nil || got.Version != tipV2 || len(got.Addrs) != 1 {
		t.Fatalf("v2 tip: %+v, %v", got, err)
	}
	v3 := &tip{Group: []byte("g"), Epoch: 3, SigKey: []byte("k"), Signature: []byte("s"), Addrs: [][]byte{{1, 2}}}
	got, err = unmarshalTip(v3.marshal())
	if err != nil || got.Version != tipV3 || len(got.Addrs) != 1 {
		t.Fatalf("v3 tip: %+v, %v", got, err)
	}
	noAddrs := *v2
	noAddrs.Addrs = nil
	if bytes.Equal(noAddrs.tbs(), v2.tbs()) {
		t.Fatal("the addresses are not signed")
	}
	future := v2.marshal()
	future[len(tipPrefix)] = tipV3 + 1
	if _, err := unmarshalTip(future); !errors.Is(err, errTipVersion) || !futureTip(future) {
		t.Fatalf("future tip: %v", err)
	}
	if futureTip(v3.marshal()) || futureTip(v2.marshal()) || futureTip(v1.marshal()) {
		t.Fatal("a known tip version taken for a future one")
	}
	tooMany := &tip{Group: []byte("g"), SigKey: []byte("k"), Signature: []byte("s"), Addrs: make([][]byte, maxTipAddrs+1)}
	if _, err := unmarshalTip(tooMany.marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a tip with too many addresses: %v", err)
	}
}

func mustAddr(t *testing.T, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return a
}

func addrsOf(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	var out []ma.Multiaddr
	for _, s := range ss {
		out = append(out, mustAddr(t, s))
	}
	return out
}

func addrStrings(as []ma.Multiaddr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
