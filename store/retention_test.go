package store

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// filesContaining returns the files under dir whose bytes contain secret.
func filesContaining(t *testing.T, dir string, secret []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed by Pebble between listing and reading
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, secret) {
			hits = append(hits, filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func randomSecret(t *testing.T) []byte {
	b := make([]byte, 48)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeletedSecretsLeaveNoTrace plants random secrets in epoch states on a
// real directory, deletes them through every deleting API, runs the deletion
// schedule (PurgeDeleted) and scans every file in the directory for them.
func TestDeletedSecretsLeaveNoTrace(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := testOptions(vfs.Default, dir, clock)
	opts.MemTableSize = 256 << 10 // several flushes and compactions during the fill
	db, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()

	type planted struct {
		name   string
		group  []byte
		eid    EpochID
		secret []byte
	}
	var ps []planted
	plant := func(name string, g []byte, e byte) planted {
		p := planted{name: name, group: g, eid: eid(e), secret: randomSecret(t)}
		state := append(append([]byte("state-prefix:"), p.secret...), []byte(":suffix")...)
		st := EpochState{EID: p.eid, Epoch: uint64(e), State: state}
		if strings.Contains(name, "batch") {
			// As the node's send path writes it: with the message's log
			// entry and view record in one Batch.
			b := db.NewBatch()
			must(t, b.PutEpochState(g, st))
			must(t, b.AppendLog(g, uint64(e), hash(e), []byte("ciphertext")))
			must(t, b.AddMessage(Message{Group: g, ID: mid(e), Time: clock.t, Sender: []byte("s"), Text: "sent"}))
			if _, err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		} else if err := db.PutEpochState(g, st); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
		return p
	}
	filler := func(n int) {
		var batch []Message
		for i := 0; i < n; i++ {
			m := Message{Group: g2, Time: clock.t.Add(time.Duration(len(ps)*10000+i) * time.Second), Sender: []byte("s"), Text: "filler text to push data through flushes and compactions " + string(rune('a'+i%26))}
			rand.Read(m.ID[:])
			batch = append(batch, m)
			if len(batch) == 100 || i == n-1 {
				if _, err := db.AddMessages(batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}

	finalised := plant("finalised", g1, 1)
	filler(5000) // pushes it into sstables, then lower levels
	deleted := plant("deleted", g1, 2)
	if err := db.pdb.Flush(); err != nil {
		t.Fatal(err)
	}
	kept := plant("kept", g1, 3)
	inGroup := plant("left group", []byte("group-left"), 4)
	walOnly := plant("wal only", g1, 5) // still only in the memtable and WAL
	batched := plant("wal only, batch", g1, 6)

	for _, p := range ps {
		if hits := filesContaining(t, dir, p.secret); len(hits) == 0 {
			t.Fatalf("scan does not find %s secret before deletion: the scan proves nothing", p.name)
		}
	}

	if err := db.FinaliseEpoch(g1, finalised.eid, 1); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteEpochState(g1, deleted.eid); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteEpochState(g1, walOnly.eid); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteEpochState(g1, batched.eid); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteGroup(inGroup.group); err != nil {
		t.Fatal(err)
	}
	filler(500)
	if err := db.PurgeDeleted(t.Context()); err != nil {
		t.Fatal(err)
	}

	check := func(phase string) {
		t.Helper()
		for _, p := range ps {
			hits := filesContaining(t, dir, p.secret)
			if p.name == kept.name {
				if len(hits) == 0 {
					t.Fatalf("%s: the kept secret is gone too: the scan or the test is broken", phase)
				}
				continue
			}
			if len(hits) != 0 {
				t.Errorf("%s: deleted %s secret still in %v", phase, p.name, hits)
			}
		}
	}
	m := db.pdb.Metrics()
	t.Logf("flushes %d, compactions %d", m.Flush.Count, m.Compact.Count)
	// Only the live WAL may remain: an obsolete WAL kept for recycling would
	// hold old records in its tail.
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) != 1 {
		t.Errorf("after purge: %d WAL files %v, want only the live one", len(logs), logs)
	}
	check("after purge")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close")
	db, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.EpochState(g1, finalised.eid); !errors.Is(err, ErrNotFound) {
		t.Fatalf("finalised state readable after reopen: %v", err)
	}
	if st, err := db.EpochState(g1, kept.eid); err != nil || !bytes.Contains(st.State, kept.secret) {
		t.Fatalf("kept state: %v", err)
	}
	check("after reopen")
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges([]keyRange{{[]byte("c"), []byte("d")}, {[]byte("a"), []byte("b")}, {[]byte("b"), []byte("bb")}, {[]byte("c0"), []byte("c1")}})
	want := []keyRange{{[]byte("a"), []byte("bb")}, {[]byte("c"), []byte("d")}}
	if len(got) != len(want) {
		t.Fatalf("mergeRanges = %q", got)
	}
	for i := range want {
		if !bytes.Equal(got[i].start, want[i].start) || !bytes.Equal(got[i].end, want[i].end) {
			t.Fatalf("mergeRanges = %q, want %q", got, want)
		}
	}
}

// TestDeletedPlaintextLeavesNoTrace plants a marker in plaintext (a view
// message with its search postings, an outbox entry, a setting), deletes it
// through the store API (deleting the message, the sent outbox entry, the
// setting, leaving the group), and scans every file of the real database
// directory, WAL, MANIFEST and OPTIONS included, after PurgeDeleted. The
// "restart" cases close and reopen the database between the deletion and the
// purge, as a node that crashed or quit before its purge would. Each case has
// its own database, so that the purge of one deletion cannot wipe another's
// traces by compacting a file they share.
func TestDeletedPlaintextLeavesNoTrace(t *testing.T) {
	gLeft := []byte("group-left")
	cases := []struct {
		name   string
		plant  func(db *DB, clock *fakeClock, marker string)
		remove func(db *DB) error
	}{
		{"message", func(db *DB, clock *fakeClock, mk string) {
			addMessages(t, db, []Message{{Group: g1, ID: mid(2), Time: clock.t, Sender: []byte("s"), Text: "bye " + mk}})
		}, func(db *DB) error { return db.DeleteMessage(g1, mid(2)) }},
		{"outbox", func(db *DB, clock *fakeClock, mk string) {
			must(t, db.PutOutbox(OutboxEntry{Group: g1, ID: mid(4), State: OutboxPending, Created: clock.t, Plaintext: []byte(mk)}))
		}, func(db *DB) error { return db.DeleteOutbox(g1, mid(4)) }},
		{"setting", func(db *DB, clock *fakeClock, mk string) {
			must(t, db.SetSetting("secret", []byte(mk)))
		}, func(db *DB) error { return db.DeleteSetting("secret") }},
		{"left group", func(db *DB, clock *fakeClock, mk string) {
			addMessages(t, db, []Message{{Group: gLeft, ID: mid(1), Time: clock.t, Sender: []byte("s"), Text: "hello " + mk + " world"}})
		}, func(db *DB) error { return db.DeleteGroup(gLeft) }},
	}
	for _, c := range cases {
		for _, restart := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/restart=%v", c.name, restart), func(t *testing.T) {
				dir := t.TempDir()
				clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
				opts := testOptions(vfs.Default, dir, clock)
				opts.testingOnlyNoCompression = true
				db, err := Open(opts)
				if err != nil {
					t.Fatal(err)
				}
				defer func() { db.Close() }()
				// The schema record goes to an sstable of its own, so that
				// the marker's sstable holds only the key spaces the case
				// writes: a purge compacting unrelated ranges (such as
				// the epoch states, which every purge after Open covers)
				// does not rewrite it by chance.
				must(t, db.pdb.Flush())
				mk := fmt.Sprintf("mk%x", randomSecret(t)[:20])
				kept := fmt.Sprintf("mk%x", randomSecret(t)[:20])
				addMessages(t, db, []Message{{Group: g2, ID: mid(3), Time: clock.t, Sender: []byte("s"), Text: "stay " + kept}})
				c.plant(db, clock, mk)
				must(t, db.pdb.Flush()) // the marker reaches an sstable
				if len(filesContaining(t, dir, []byte(mk))) == 0 {
					t.Fatal("marker not found before deletion: the scan proves nothing")
				}
				must(t, c.remove(db))
				if !db.PurgePending() {
					t.Fatal("PurgePending is false after the deletion")
				}
				if restart {
					must(t, db.Close())
					if db, err = Open(opts); err != nil {
						t.Fatal(err)
					}
				}
				must(t, db.PurgeDeleted(t.Context()))
				if db.PurgePending() {
					t.Fatal("PurgePending is true after PurgeDeleted")
				}
				if hits := filesContaining(t, dir, []byte(mk)); len(hits) != 0 {
					t.Errorf("deleted marker still in %v", hits)
				}
				if len(filesContaining(t, dir, []byte(kept))) == 0 {
					t.Fatal("the kept message is gone too")
				}
				if res, err := db.Search(t.Context(), Query{Text: kept}); err != nil || len(res.Hits) != 1 {
					t.Fatalf("search for the kept message after purge: %+v, %v", res, err)
				}
				// A second purge with nothing deleted is a no-op.
				must(t, db.PurgeDeleted(t.Context()))
			})
		}
	}
}

func addMessages(t *testing.T, db *DB, ms []Message) {
	t.Helper()
	if _, err := db.AddMessages(ms); err != nil {
		t.Fatal(err)
	}
}
