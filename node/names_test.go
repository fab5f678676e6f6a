package node

import (
	"errors"
	"grove/p2p"
	"grove/store"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func testPeerID(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestCheckNameRefusesHiddenCharacters(t *testing.T) {
	for _, bad := range []string{
		"", "victim\u200b", "vic\u200dtim", "\u202eevil", "a\u2066b\u2069", "\ufeffbob",
		"bob\x1bname", "bob\nbob", "bob\u2028", " bob", "bob ", "bo\u00a0b",
		"bob\ufe0f", "\u3164", "e\u0301", // not NFC
		string(make([]byte, maxNameLen+1)),
	} {
		if err := checkName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("checkName(%q) = %v, want ErrBadName", bad, err)
		}
	}
	for _, good := range []string{"alice", "Zoë", "李雷", "Ana María", "o'brien", "bob (laptop)", "🌲grove"} {
		if err := checkName(good); err != nil {
			t.Errorf("checkName(%q) = %v", good, err)
		}
	}
}

// A credential carrying a name with a zero-width character is not a Grove
// identity: it is refused where credentials are parsed, so it never shows.
func TestParseIdentityRefusesHiddenName(t *testing.T) {
	p := testPeerID(t)
	good := memberIdentity{Name: "victim", Peer: p}.marshal()
	if _, err := parseIdentity(good); err != nil {
		t.Fatalf("valid identity refused: %v", err)
	}
	bad := memberIdentity{Name: "victim\u200b", Peer: p}.marshal()
	if _, err := parseIdentity(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("parseIdentity(zero-width name) = %v, want ErrMalformed", err)
	}
}

func TestNameSkeletonConfusables(t *testing.T) {
	same := [][2]string{
		{"alice", "Alice"}, {"alice", "аlice"}, // Cyrillic а
		{"paypal", "pаypаl"}, {"bob", "ｂｏｂ"}, // full width
		{"modern", "rnodern"}, {"will", "wi1l"}, {"olga", "0lga"}, {"Zoë", "zoe"},
	}
	for _, p := range same {
		if nameSkeleton(p[0]) != nameSkeleton(p[1]) {
			t.Errorf("%q and %q should look alike: %q vs %q", p[0], p[1], nameSkeleton(p[0]), nameSkeleton(p[1]))
		}
	}
	for _, p := range [][2]string{{"alice", "alicia"}, {"bob", "rob"}, {"dan", "don"}} {
		if nameSkeleton(p[0]) == nameSkeleton(p[1]) {
			t.Errorf("%q and %q should differ", p[0], p[1])
		}
	}
}

func TestDisplayNamesTagLookAlikes(t *testing.T) {
	alice := memberIdentity{Name: "alice", Peer: testPeerID(t)}.marshal()
	fake := memberIdentity{Name: "аlice", Peer: testPeerID(t)}.marshal() // Cyrillic а
	bob := memberIdentity{Name: "bob", Peer: testPeerID(t)}.marshal()
	names := displayNames([][]byte{alice, fake, bob, alice})
	if names[string(bob)] != "bob" {
		t.Errorf("bob shown as %q", names[string(bob)])
	}
	a, f := names[string(alice)], names[string(fake)]
	if a == f || a == "alice" || f == "аlice" {
		t.Errorf("look-alikes not told apart: %q and %q", a, f)
	}
	if a != "alice #"+nameTag(alice) {
		t.Errorf("alice shown as %q", a)
	}
}

// A message is our own only if it was sent under our whole credential
// identity: a forged credential that copies our peer id under another name
// (the impersonation of issue 18) is not "own" on our device.
func TestOwnDecidedByIdentityNotPeerID(t *testing.T) {
	mn := p2p.NewMemNetwork()
	n := memNode(t, mn, "victim")
	ctx := ctxT(t, 10*time.Second)
	g, err := n.CreateGroup(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	a, err := n.lookup(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	forged := memberIdentity{Name: "victim2", Peer: n.net.ID()}.marshal()
	if got := n.apiMessage(a, store.Message{Sender: forged, Text: "x"}); got.Own {
		t.Errorf("a message under a forged credential with our peer id shows as own")
	}
	if got := n.apiMessage(a, store.Message{Sender: n.selfID, Text: "x"}); !got.Own {
		t.Errorf("a message under our own identity is not own")
	}
}
