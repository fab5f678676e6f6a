package node

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"grove/store"
)

// TestRestartWithEpochStateCommitorderNeverSaw is testnet TestCrash's
// stall (issue 17: 4 of 50 runs under load): a device killed after it had
// persisted the epoch a Commit made (persist, before commitorder is told)
// but before commitorder's state was saved comes back with that epoch's
// MLS state and a commitorder that does not know it. The next Commit,
// arriving by gossip before sync has brought the lost one again, then
// decrypted with the orphan state: commitorder held it (parent unknown)
// while the log marked it processed, so no later sync ever fed it again
// and the device stayed one epoch behind for good.
//
// The crash image is built from a snapshot of bob's home at epoch E with
// his own state of E+1 planted in it; the next Commit (E+1 to E+2) is fed
// to him before he reaches alice.
func TestRestartWithEpochStateCommitorderNeverSaw(t *testing.T) {
	checkLeaks(t)
	alice := realNode(t, t.TempDir(), "alice")
	defer alice.Close()
	bobHome := t.TempDir()
	bob := realNode(t, bobHome, "bob")
	ctx := ctxT(t, 90*time.Second)
	g, err := alice.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	pair := []*Node{alice, bob}
	eventually(t, 15*time.Second, "two members on one epoch", func() error {
		if c := memberCount(bob, g.ID); c != 2 {
			return fmt.Errorf("bob sees %d members", c)
		}
		return sameEpoch(pair, g.ID)
	})
	e := groupEpoch(t, alice, g.ID)
	bob.Close()
	crashed := t.TempDir()
	copyHome(t, bobHome, crashed)
	// Bob's next epoch, made by alice's rotation.
	bob = realNode(t, bobHome, "bob")
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	rotateAndWait(t, alice, g.ID, e+1, []*Node{alice, bob})
	bob.Close()
	gid := decodeHexT(t, g.ID)
	var next store.EpochState
	withStore(t, bobHome, func(db *store.DB) {
		states, err := db.EpochStates(gid)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range states {
			if st.Epoch == e+1 {
				next = st
			}
		}
	})
	if next.State == nil {
		t.Fatalf("bob holds no state of epoch %d", e+1)
	}
	withStore(t, crashed, func(db *store.DB) {
		if err := db.PutEpochState(gid, next); err != nil {
			t.Fatal(err)
		}
	})
	// Restarted, bob must not reach alice before the fed Commit.
	os.Remove(filepath.Join(crashed, "peers"))

	rotateAndWait(t, alice, g.ID, e+2, []*Node{alice})
	logged, err := alice.db.LogByEpoch(gid, e+1)
	if err != nil {
		t.Fatal(err)
	}
	var commit []byte
	for _, l := range logged {
		if _, _, isCommit, err := frameInfo(l.Message); err == nil && isCommit {
			commit = l.Message
		}
	}
	if commit == nil {
		t.Fatalf("alice's log of epoch %d has no Commit", e+1)
	}

	bob = realNode(t, crashed, "bob")
	defer bob.Close()
	a, err := bob.lookup(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.do(ctx, func() error { a.receive(commit); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "bob on alice's epoch", func() error { return sameEpoch([]*Node{alice, bob}, g.ID) })
}

// rotateAndWait has n rotate its keys in group id and waits until every
// node of on is on epoch want, on one epoch id.
func rotateAndWait(t *testing.T, n *Node, id string, want uint64, on []*Node) {
	t.Helper()
	if err := n.Rotate(ctxT(t, 10*time.Second), id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, fmt.Sprintf("epoch %d", want), func() error {
		for _, m := range on {
			if got := groupEpoch(t, m, id); got != want {
				return fmt.Errorf("%s on epoch %d", m.self.Name, got)
			}
		}
		return sameEpoch(on, id)
	})
}

// withStore opens the store of the (stopped) node whose home is home.
func withStore(t *testing.T, home string, fn func(*store.DB)) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: filepath.Join(home, "db"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fn(db)
}

// copyHome copies a stopped node's home, owner-only as the node wants it.
func copyHome(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(to, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o700)
		}
		return os.Chmod(p, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
