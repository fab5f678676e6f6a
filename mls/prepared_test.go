package mls

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// prepareVerifyApply runs the three steps, Verify on another goroutine.
func prepareVerifyApply(t *testing.T, g *Group, msg []byte) (*ProcessedMessage, error) {
	t.Helper()
	p, err := g.PrepareApplication(msg)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.Verify() })
	wg.Wait()
	return g.ApplyPrepared(p)
}

func TestPreparedApplication(t *testing.T) {
	tg := newTestGroup(t, testSuite, 40, "alice")
	tg.add("alice", "bob", "carol")
	alice, bob := tg.members["alice"], tg.members["bob"]
	send := func(text string) []byte {
		m, err := alice.ProtectApplication([]byte(text), []byte("ad"), tg.rand)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1, m2, m3 := send("one"), send("two"), send("three")

	// Preparing changes nothing, however many times.
	before := stateOf(t, bob)
	p1, err := bob.PrepareApplication(m1)
	if err != nil {
		t.Fatal(err)
	}
	p3, err := bob.PrepareApplication(m3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.PrepareApplication(m1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, stateOf(t, bob)) {
		t.Fatal("PrepareApplication changed the group")
	}
	// Not before the signature is checked.
	if _, err := bob.ApplyPrepared(p1); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("apply unverified: %v", err)
	}
	if !bytes.Equal(before, stateOf(t, bob)) {
		t.Fatal("a refused ApplyPrepared changed the group")
	}
	// Applied out of the order prepared, with another message processed
	// in between: each gives what ProcessMessage gives.
	p1.Verify()
	p3.Verify()
	pm3, err := bob.ApplyPrepared(p3)
	if err != nil || string(pm3.ApplicationData) != "three" || string(pm3.AuthenticatedData) != "ad" || pm3.Sender.LeafIndex != alice.OwnLeaf() || pm3.Kind != KindApplication {
		t.Fatalf("apply 3: %+v %v", pm3, err)
	}
	if pm, err := bob.ProcessMessage(m2, ProcessOptions{Now: testNow}); err != nil || string(pm.ApplicationData) != "two" {
		t.Fatalf("process 2: %v", err)
	}
	pm1, err := bob.ApplyPrepared(p1)
	if err != nil || string(pm1.ApplicationData) != "one" {
		t.Fatalf("apply 1: %+v %v", pm1, err)
	}
	// Each key went once: a second copy fails as with ProcessMessage.
	after := stateOf(t, bob)
	if _, err := bob.ApplyPrepared(p1); !errors.Is(err, ErrReplay) {
		t.Fatalf("apply 1 again: %v", err)
	}
	if _, err := bob.PrepareApplication(m3); !errors.Is(err, ErrReplay) {
		t.Fatalf("prepare 3 again: %v", err)
	}
	if !bytes.Equal(after, stateOf(t, bob)) {
		t.Fatal("a replay changed the group")
	}

	// The same steps on carol, from a past epoch after a commit.
	carol := tg.members["carol"]
	m4 := send("four")
	p4, err := carol.PrepareApplication(m4)
	if err != nil {
		t.Fatal(err)
	}
	tg.commit("bob", &CommitOptions{}, nil)
	if carol == tg.members["carol"] || carol.Epoch() == tg.members["carol"].Epoch() {
		t.Fatal("the commit did not make a new epoch")
	}
	carol = tg.members["carol"]
	if pm, err := prepareVerifyApply(t, carol, m4); err != nil || string(pm.ApplicationData) != "four" {
		t.Fatalf("past epoch: %+v %v", pm, err)
	}
	// p4 was prepared on carol's previous state: the message's key is
	// consumed already, or its epoch is not that state's.
	p4.Verify()
	if _, err := carol.ApplyPrepared(p4); err == nil {
		t.Fatal("a message prepared twice applied twice")
	}

	// Not an application message, or one's own: ProcessMessage's errors.
	if _, err := alice.PrepareApplication(send("own")); !errors.Is(err, ErrOwnMessage) {
		t.Fatalf("own: %v", err)
	}
	sc, err := alice.Commit(&CommitOptions{Rand: tg.rand, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.PrepareApplication(sc.Message); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("commit: %v", err)
	}
	sc.Discard()
}

// A forged signature is found by Verify and changes nothing, as
// ProcessMessage's check (TestRejectedMessages).
func TestPreparedForgedSignature(t *testing.T) {
	tg := newTestGroup(t, testSuite, 41, "alice")
	tg.add("alice", "bob", "carol")
	alice, bob := tg.members["alice"], tg.members["bob"]
	// carol's leaf, alice's signing key.
	ac, err := alice.msg.NewAuthenticatedContent(WireFormatPrivateMessage, FramedContent{
		Sender: MemberSender(tg.members["carol"].own), ContentType: ContentTypeApplication, ApplicationData: []byte("x"),
	}, alice.sigKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := alice.msg.ProtectPrivate(ac, 0, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMLSMessage(priv)
	forged, _ := m.MarshalBinary()
	before := stateOf(t, bob)
	p, err := bob.PrepareApplication(forged)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("verify: %v", err)
	}
	if _, err := bob.ApplyPrepared(p); !errors.Is(err, ErrInvalidSignature) {
		t.Fatalf("apply: %v", err)
	}
	if !bytes.Equal(before, stateOf(t, bob)) {
		t.Fatal("a forged message changed the group")
	}
	// A tampered ciphertext fails at once, as with ProcessMessage.
	bad := bytes.Clone(tg.sendApp("alice", "y"))
	bad[len(bad)-3] ^= 1
	if _, err := bob.PrepareApplication(bad); !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrReplay) {
		t.Fatalf("tampered: %v", err)
	}
}
