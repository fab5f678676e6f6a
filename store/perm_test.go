package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestDatabaseIsOwnerOnly pre-creates a world-readable database directory
// with a world-readable file in it, opens, writes (through flushes and a
// WAL rotation) and reopens, then checks that every directory is 0700 and
// every file 0600.
func TestDatabaseIsOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	stray := filepath.Join(dir, "left-behind")
	if err := os.WriteFile(stray, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(stray, 0o644); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := testOptions(vfs.Default, dir, clock)
	for round := 0; round < 2; round++ {
		db, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		addMessages(t, db, []Message{{Group: g1, ID: mid(byte(round)), Time: clock.t, Sender: []byte("s"), Text: "hello"}})
		must(t, db.PutEpochState(g1, EpochState{EID: eid(byte(round)), Epoch: 1, State: []byte("secret")}))
		must(t, db.FinaliseEpoch(g1, eid(byte(round)), 1))
		must(t, db.PurgeDeleted(t.Context()))
		must(t, db.Close())
	}
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("only %d entries checked", n)
	}
}
