package store

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// TestSecondOpenLeavesRunningDatabaseAlone: a file the running process has
// just created (Pebble creates it with the default mode; privateFS narrows
// it a moment later) is not repaired, nor warned about, by a second open
// of the same directory, which fails on the lock instead. A second daemon
// started by mistake printed a spurious "readable by other users" warning
// for a fresh sstable before its "already running" error.
func TestSecondOpenLeavesRunningDatabaseAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := testOptions(vfs.Default, dir, clock)
	db, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fresh := filepath.Join(dir, "000099.sst")
	if err := os.WriteFile(fresh, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fresh, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	var logged strings.Builder
	opts.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	if second, err := Open(opts); err == nil {
		second.Close()
		t.Fatal("a second open of a database in use succeeded")
	}
	if strings.Contains(logged.String(), "readable by other users") {
		t.Errorf("second open warned about the running database's files: %s", logged.String())
	}
	info, err := os.Stat(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o644 {
		t.Errorf("second open changed a file of the running database to %v", got)
	}
}
