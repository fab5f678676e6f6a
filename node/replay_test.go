package node

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grove/store"
)

// TestOutboxReplayAfterCrash: a message that reached the outbox but was
// never encrypted or published (a crash right after Send returned) is sent
// after restart, exactly once.
func TestOutboxReplayAfterCrash(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	bobHome := t.TempDir()
	bob := realNode(t, bobHome, "bob")
	ctx := ctxT(t, 40*time.Second)
	g := createAndJoin(t, ctx, alice, bob)
	if _, err := bob.Send(ctx, g.ID, "before"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "before", func() error { return hasTexts(alice, g.ID, "before") })
	bob.Close()

	// What Send leaves behind when the process dies after the outbox write.
	db, err := store.Open(store.Options{Dir: filepath.Join(bobHome, "db"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := hex.DecodeString(g.ID)
	p := &appPayload{Kind: kindText, Time: time.Now().UTC(), Text: "stranded in the outbox"}
	rand.Read(p.ID[:])
	if err := db.PutOutbox(store.OutboxEntry{Group: gid, ID: store.MessageID(p.ID), State: store.OutboxPending, Plaintext: p.marshal(), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	bob = realNode(t, bobHome, "bob")
	defer bob.Close()
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "replayed", func() error { return hasTexts(alice, g.ID, "before", "stranded in the outbox") })
	if err := hasTexts(bob, g.ID, "before", "stranded in the outbox"); err != nil {
		t.Fatal(err)
	}
	// And it is shown once even though later syncs carry it again.
	time.Sleep(500 * time.Millisecond)
	if err := hasTexts(alice, g.ID, "before", "stranded in the outbox"); err != nil {
		t.Fatal(err)
	}
}

// TestInviteSurvivesRestart: a code issued before the inviter restarts is
// still redeemable once, and only once.
func TestInviteSurvivesRestart(t *testing.T) {
	checkLeaks(t)
	home := t.TempDir()
	alice := realNode(t, home, "alice")
	ctx := ctxT(t, 30*time.Second)
	g, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	alice.Close()
	alice = realNode(t, home, "alice")
	defer alice.Close()
	// The code carries the old listen address (port 0 picks a new one), so
	// reach alice directly; the invite record is what is under test.
	bob := realNode(t, t.TempDir(), "bob")
	defer bob.Close()
	carol := realNode(t, t.TempDir(), "carol")
	defer carol.Close()
	for _, n := range []*Node{bob, carol} {
		if err := n.Connect(ctx, alice.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	alice.Close()
	alice = realNode(t, home, "alice")
	defer alice.Close()
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Join(ctx, inv.Code); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("reuse after restart: %v", err)
	}
}
