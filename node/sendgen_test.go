package node

import (
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"grove/store"
)

// TestRestartNeverReusesASendingGeneration: Send publishes before its
// writes are synced, so a crash can leave on disk an epoch state from
// before a message the group already received. Simulated here by putting
// back bob's stored epoch states from before his message "lost write"
// while he is down. After the restart his next message must use a fresh
// sending generation: alice consumed the key of the lost write's one, so a
// message reusing it (another plaintext under the same key and nonce)
// would be unreadable to her, and is here shown to her like any other.
func TestRestartNeverReusesASendingGeneration(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	bobHome := t.TempDir()
	bob := realNode(t, bobHome, "bob")
	ctx := ctxT(t, 40*time.Second)
	g := createAndJoin(t, ctx, alice, bob)
	if _, err := bob.Send(ctx, g.ID, "first"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "first", func() error { return hasTexts(alice, g.ID, "first") })
	gid, _ := hex.DecodeString(g.ID)
	before, err := bob.db.EpochStates(gid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, g.ID, "lost write"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "lost write", func() error { return hasTexts(alice, g.ID, "first", "lost write") })
	bob.Close()

	db, err := store.Open(store.Options{Dir: filepath.Join(bobHome, "db"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range before {
		if err := db.PutEpochState(gid, st); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	bob = realNode(t, bobHome, "bob")
	defer bob.Close()
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, g.ID, "after the restart"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the message after the restart", func() error {
		return hasTexts(alice, g.ID, "first", "lost write", "after the restart")
	})
}
