package store

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeClock is a settable clock for Options.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func testOptions(fs vfs.FS, dir string, clock *fakeClock) Options {
	return Options{Dir: dir, FS: fs, Logger: quietLogger(), Now: clock.now}
}

func openMem(t *testing.T) (*DB, vfs.FS, *fakeClock) {
	t.Helper()
	fs := vfs.NewMem()
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	db, err := Open(testOptions(fs, "db", clock))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, fs, clock
}

func reopen(t *testing.T, db *DB, fs vfs.FS, clock *fakeClock) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db2, err := Open(testOptions(fs, "db", clock))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { db2.Close() })
	return db2
}

var (
	g1 = []byte("group-one")
	g2 = []byte("group-two")
)

func eid(b byte) EpochID      { var e EpochID; e[0] = b; e[15] = b; return e }
func mid(b byte) MessageID    { var m MessageID; m[0] = b; m[15] = ^b; return m }
func hash(b byte) MessageHash { var h MessageHash; h[0] = b; h[31] = b; return h }

func TestOptionsValidate(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if err := o.Validate(); err == nil {
		t.Fatal("Validate accepted options without Dir")
	}
	o.Dir = "x"
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	o.MemTableSize = 1
	if err := o.Validate(); err == nil {
		t.Fatal("Validate accepted a tiny memtable")
	}
	o.MemTableSize = 32 << 20
	if err := o.Validate(); err == nil {
		t.Fatal("Validate accepted memtables that leave no block cache")
	}
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open accepted empty options")
	}
}

func TestIdentityAndSettings(t *testing.T) {
	db, fs, clock := openMem(t)
	if _, err := db.Identity(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Identity on empty db: %v, want ErrNotFound", err)
	}
	if err := db.SetIdentity(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetIdentity(nil): %v", err)
	}
	if err := db.SetIdentity([]byte("peer key + credential")); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSetting("nick", []byte("ada")); err != nil {
		t.Fatal(err)
	}
	if err := db.SetSetting("", []byte("x")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty setting name: %v", err)
	}
	db = reopen(t, db, fs, clock)
	id, err := db.Identity()
	if err != nil || string(id) != "peer key + credential" {
		t.Fatalf("Identity = %q, %v", id, err)
	}
	v, err := db.Setting("nick")
	if err != nil || string(v) != "ada" {
		t.Fatalf("Setting = %q, %v", v, err)
	}
	if err := db.DeleteSetting("nick"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Setting("nick"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted setting: %v", err)
	}
}

func TestGroupsAndEpochs(t *testing.T) {
	db, fs, clock := openMem(t)
	meta := GroupMeta{Name: "friends", Created: clock.t, Data: []byte{1, 2, 3}}
	if err := db.PutGroup(g1, meta); err != nil {
		t.Fatal(err)
	}
	if err := db.PutGroup(g2, GroupMeta{Name: "work"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutGroup(make([]byte, MaxGroupIDLen+1), meta); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("oversized group id: %v", err)
	}
	for i := byte(1); i <= 3; i++ {
		if err := db.PutEpochState(g1, EpochState{EID: eid(i), Epoch: uint64(i), State: []byte{i, i, i}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutEpochState(g1, EpochState{EID: eid(9)}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty state: %v", err)
	}
	db = reopen(t, db, fs, clock)
	got, err := db.Group(g1)
	if err != nil || got.Name != "friends" || !got.Created.Equal(meta.Created) || !bytes.Equal(got.Data, meta.Data) {
		t.Fatalf("Group = %+v, %v", got, err)
	}
	groups, err := db.Groups()
	if err != nil || len(groups) != 2 {
		t.Fatalf("Groups = %q, %v", groups, err)
	}
	st, err := db.EpochState(g1, eid(2))
	if err != nil || st.Epoch != 2 || !bytes.Equal(st.State, []byte{2, 2, 2}) {
		t.Fatalf("EpochState = %+v, %v", st, err)
	}
	if err := db.FinaliseEpoch(g1, eid(1), 1); err != nil {
		t.Fatal(err)
	}
	if err := db.OrphanEpoch(g1, eid(3), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EpochState(g1, eid(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("finalised state still there: %v", err)
	}
	if _, err := db.EpochState(g1, eid(3)); err != nil {
		t.Fatalf("orphaned state must be kept: %v", err)
	}
	m, err := db.EpochMarker(g1, eid(1))
	if err != nil || m.Mark != MarkFinal || m.Epoch != 1 || !m.At.Equal(clock.t) {
		t.Fatalf("marker = %+v, %v", m, err)
	}
	m, err = db.EpochMarker(g1, eid(3))
	if err != nil || m.Mark != MarkOrphaned {
		t.Fatalf("marker = %+v, %v", m, err)
	}
	if err := db.DeleteEpochState(g1, eid(3)); err != nil {
		t.Fatal(err)
	}
	states, err := db.EpochStates(g1)
	if err != nil || len(states) != 1 || states[0].EID != eid(2) {
		t.Fatalf("EpochStates = %+v, %v", states, err)
	}
	if s, err := db.EpochStates(g2); err != nil || len(s) != 0 {
		t.Fatalf("other group's states = %+v, %v", s, err)
	}
}

func TestCiphertextLog(t *testing.T) {
	db, fs, clock := openMem(t)
	start := clock.t
	for i := byte(1); i <= 5; i++ {
		clock.t = start.Add(time.Duration(i) * time.Hour)
		added, err := db.AppendLog(g1, uint64(i%2), hash(i), []byte{'m', i})
		if err != nil || !added {
			t.Fatalf("AppendLog %d: %v %v", i, added, err)
		}
	}
	if added, err := db.AppendLog(g1, 1, hash(1), []byte("m1")); err != nil || added {
		t.Fatalf("duplicate AppendLog: added=%v err=%v", added, err)
	}
	if _, err := db.AppendLog(g2, 0, hash(7), []byte("other")); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, fs, clock)
	e1, err := db.LogByEpoch(g1, 1)
	if err != nil || len(e1) != 3 {
		t.Fatalf("LogByEpoch(1) = %d entries, %v", len(e1), err)
	}
	for i, e := range e1 {
		if e.Epoch != 1 || e.Message[1] != e.Hash[0] {
			t.Fatalf("bad entry %+v", e)
		}
		if i > 0 && e.Seq <= e1[i-1].Seq {
			t.Fatalf("LogByEpoch not in arrival order at %d: seq %d after %d", i, e.Seq, e1[i-1].Seq)
		}
	}
	var all []LogEntry
	var cursor uint64
	for {
		page, err := db.LogSince(g1, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		cursor = page[len(page)-1].Seq
	}
	if len(all) != 5 {
		t.Fatalf("LogSince paged %d entries, want 5", len(all))
	}
	for i, e := range all {
		if e.Hash != hash(byte(i+1)) || (i > 0 && e.Seq <= all[i-1].Seq) {
			t.Fatalf("arrival order broken at %d: %+v", i, e)
		}
	}
	// Sequence numbers continue after reopen and never reuse pruned ones.
	lastSeq := all[4].Seq
	clock.t = start.Add(10 * time.Hour)
	n, err := db.PruneLog(start.Add(3*time.Hour + time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("PruneLog = %d, %v; want 3", n, err)
	}
	if _, err := db.LogEntry(g1, 1, hash(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pruned entry: %v", err)
	}
	if e, err := db.LogEntry(g1, 0, hash(4)); err != nil || string(e.Message) != "m\x04" {
		t.Fatalf("kept entry: %+v %v", e, err)
	}
	if _, err := db.PruneLog(start.Add(100 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, fs, clock)
	if _, err := db.AppendLog(g1, 5, hash(9), []byte("new")); err != nil {
		t.Fatal(err)
	}
	page, err := db.LogSince(g1, lastSeq, 10)
	if err != nil || len(page) != 1 || page[0].Seq <= lastSeq {
		t.Fatalf("after prune, LogSince = %+v, %v", page, err)
	}
}

func TestOutbox(t *testing.T) {
	db, fs, clock := openMem(t)
	for i := byte(1); i <= 3; i++ {
		e := OutboxEntry{Group: g1, ID: mid(i), State: OutboxPending, Plaintext: []byte{'p', i}, Created: clock.t}
		if err := db.PutOutbox(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutOutbox(OutboxEntry{Group: g2, ID: mid(1), State: OutboxPending}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutOutbox(OutboxEntry{Group: g1, ID: mid(9), State: 7}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad state: %v", err)
	}
	if err := db.SetOutboxState(g1, mid(2), OutboxSent, 42); err != nil {
		t.Fatal(err)
	}
	if err := db.SetOutboxState(g1, mid(8), OutboxSent, 42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetOutboxState on missing: %v", err)
	}
	db = reopen(t, db, fs, clock)
	e, err := db.Outbox(g1, mid(2))
	if err != nil || e.State != OutboxSent || e.Epoch != 42 || string(e.Plaintext) != "p\x02" {
		t.Fatalf("Outbox = %+v, %v", e, err)
	}
	pending, err := db.OutboxEntries(nil, OutboxPending)
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending = %d, %v; want 3 (two in g1, one in g2)", len(pending), err)
	}
	g1All, err := db.OutboxEntries(g1)
	if err != nil || len(g1All) != 3 {
		t.Fatalf("g1 outbox = %d, %v", len(g1All), err)
	}
	if err := db.DeleteOutbox(g1, mid(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Outbox(g1, mid(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted outbox entry: %v", err)
	}
}

func msg(g []byte, id byte, at time.Time, sender, text string) Message {
	return Message{Group: g, ID: mid(id), Time: at, Sender: []byte(sender), Text: text, Epoch: uint64(id)}
}

func TestViewAndDedup(t *testing.T) {
	db, fs, clock := openMem(t)
	t0 := clock.t
	added, err := db.AddMessages([]Message{
		msg(g1, 2, t0.Add(2*time.Minute), "bob", "second"),
		msg(g1, 1, t0.Add(1*time.Minute), "ann", "first"),
		msg(g1, 1, t0.Add(1*time.Minute), "ann", "first again in the same batch"),
		msg(g2, 1, t0, "cy", "other group"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false, true}; !equalBools(added, want) {
		t.Fatalf("added = %v, want %v", added, want)
	}
	if ok, err := db.AddMessage(msg(g1, 2, t0, "bob", "replayed")); err != nil || ok {
		t.Fatalf("replayed message added=%v err=%v", ok, err)
	}
	if _, err := db.AddMessage(Message{Group: g1, ID: mid(5), Sender: []byte("x")}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("message without time: %v", err)
	}
	db = reopen(t, db, fs, clock)
	ms, err := db.Messages(g1, time.Time{}, 10)
	if err != nil || len(ms) != 2 || ms[0].Text != "first" || ms[1].Text != "second" {
		t.Fatalf("Messages = %+v, %v", ms, err)
	}
	ms, err = db.Messages(g1, t0.Add(90*time.Second), 10)
	if err != nil || len(ms) != 1 || ms[0].ID != mid(2) {
		t.Fatalf("Messages since = %+v, %v", ms, err)
	}
	if err := db.SetMessageFlags(g1, mid(2), FlagOrphanedBranch|FlagResent); err != nil {
		t.Fatal(err)
	}
	m, err := db.Message(g1, mid(2))
	if err != nil || m.Flags != FlagOrphanedBranch|FlagResent || string(m.Sender) != "bob" || m.Epoch != 2 || !m.Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("Message = %+v, %v", m, err)
	}
	if err := db.DeleteMessage(g1, mid(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Message(g1, mid(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted message: %v", err)
	}
	if seen, err := db.Seen(g1, []byte("bob"), mid(2)); err != nil || !seen {
		t.Fatalf("dedup marker must survive deletion: %v %v", seen, err)
	}
	if ok, err := db.AddMessage(msg(g1, 2, t0, "bob", "late copy")); err != nil || ok {
		t.Fatalf("late copy of deleted message added=%v err=%v", ok, err)
	}
	if n, err := db.MarkSeen(g2, []byte("cy"), mid(9)); err != nil || !n {
		t.Fatalf("MarkSeen = %v %v", n, err)
	}
	if n, err := db.MarkSeen(g2, []byte("cy"), mid(9)); err != nil || n {
		t.Fatalf("second MarkSeen = %v %v", n, err)
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDeleteGroup(t *testing.T) {
	db, fs, clock := openMem(t)
	for _, g := range [][]byte{g1, g2} {
		if err := db.PutGroup(g, GroupMeta{Name: string(g)}); err != nil {
			t.Fatal(err)
		}
		if err := db.PutEpochState(g, EpochState{EID: eid(1), Epoch: 1, State: []byte("s")}); err != nil {
			t.Fatal(err)
		}
		if err := db.FinaliseEpoch(g, eid(0), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AppendLog(g, 1, hash(1), []byte("c")); err != nil {
			t.Fatal(err)
		}
		if err := db.PutOutbox(OutboxEntry{Group: g, ID: mid(1), State: OutboxPending, Plaintext: []byte("p")}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AddMessage(msg(g, 1, clock.t, "ann", "hello world")); err != nil {
			t.Fatal(err)
		}
	}
	// A group id that extends g1 must not be caught by g1's deletion.
	g1x := append(append([]byte(nil), g1...), 'x')
	if err := db.PutGroup(g1x, GroupMeta{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteGroup(g1); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, fs, clock)
	if _, err := db.Group(g1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("group meta: %v", err)
	}
	if _, err := db.Group(g1x); err != nil {
		t.Fatalf("neighbour group deleted: %v", err)
	}
	if _, err := db.EpochState(g1, eid(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("epoch state: %v", err)
	}
	if _, err := db.EpochMarker(g1, eid(0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("epoch marker: %v", err)
	}
	if _, err := db.LogEntry(g1, 1, hash(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("log: %v", err)
	}
	if s, err := db.LogSince(g1, 0, 10); err != nil || len(s) != 0 {
		t.Fatalf("log arrivals: %v %v", s, err)
	}
	if _, err := db.Outbox(g1, mid(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("outbox: %v", err)
	}
	if seen, _ := db.Seen(g1, []byte("ann"), mid(1)); seen {
		t.Fatal("dedup marker survived")
	}
	res, err := db.Search(t.Context(), Query{Text: "hello"})
	if err != nil || len(res.Hits) != 1 || !bytes.Equal(res.Hits[0].Message.Group, g2) {
		t.Fatalf("search after DeleteGroup = %+v, %v", res, err)
	}
	// Everything of g2 is intact.
	if _, err := db.EpochState(g2, eid(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Outbox(g2, mid(1)); err != nil {
		t.Fatal(err)
	}
	if st := db.stats; st.docs != 1 {
		t.Fatalf("index stats docs = %d, want 1", st.docs)
	}
}

func TestSchemaNewerRefused(t *testing.T) {
	db, fs, clock := openMem(t)
	if err := db.pdb.Set(schemaKey, []byte{0, 0, 0, SchemaVersion + 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(testOptions(fs, "db", clock))
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of newer schema: %v, want ErrNewerSchema", err)
	}
}

func TestSchemaMissingInNonEmptyDB(t *testing.T) {
	db, fs, clock := openMem(t)
	if err := db.SetIdentity([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := db.pdb.Delete(schemaKey, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(testOptions(fs, "db", clock)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open without schema key: %v, want ErrCorrupt", err)
	}
}

// TestMigrateFromSchema1 writes a schema-1 database by hand (view records
// without document numbers, no index) and checks that Open builds the index.
func TestMigrateFromSchema1(t *testing.T) {
	fs := vfs.NewMem()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	pdb, err := pebble.Open("db", &pebble.Options{FS: fs, Logger: pebbleLogger{quietLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2500 // more than one migration chunk
	for i := 0; i < n; i++ {
		var id MessageID
		id[0], id[1] = byte(i>>8), byte(i)
		ts := clock.t.Add(time.Duration(i) * time.Second).UnixNano()
		e := newEncV(1, 32)
		e.bytes([]byte("ann"))
		text := "plain words"
		if i%100 == 7 {
			text = "a rare needle here"
		}
		e.bytes([]byte(text))
		e.uvarint(3)
		e.uvarint(0)
		if err := pdb.Set(legacyViewKey(g1, ts, id), e.b, nil); err != nil {
			t.Fatal(err)
		}
		if err := pdb.Set(viewByIDKey(g1, id), be64(uint64(ts)), nil); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // schema-1 dedup marker: first-seen time only
			d := newEncV(1, 10)
			d.time(clock.t.Add(-time.Hour))
			if err := pdb.Set(dedupPrefix(g1, id), d.b, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pdb.Set(schemaKey, []byte{0, 0, 0, 1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	pdb.Close()

	db, err := Open(testOptions(fs, "db", clock))
	if err != nil {
		t.Fatalf("Open with migration: %v", err)
	}
	defer db.Close()
	v, err := db.schemaVersion()
	if err != nil || v != SchemaVersion {
		t.Fatalf("schema after migration = %d, %v", v, err)
	}
	res, err := db.Search(t.Context(), Query{Text: "needle", Limit: MaxSearchLimit})
	if err != nil || len(res.Hits) != n/100 {
		t.Fatalf("search after migration: %d hits, %v; want %d", len(res.Hits), err, n/100)
	}
	if db.stats.docs != n {
		t.Fatalf("index stats docs = %d, want %d", db.stats.docs, n)
	}
	ms, err := db.Messages(g1, time.Time{}, 3)
	if err != nil || len(ms) != 3 || ms[0].Text != "plain words" {
		t.Fatalf("Messages after migration = %+v, %v", ms, err)
	}
	var id7 MessageID
	id7[1] = 7
	if m, err := db.Message(g1, id7); err != nil || m.Text != "a rare needle here" {
		t.Fatalf("Message by id after migration = %+v, %v", m, err)
	}
	if ok, err := db.AddMessage(Message{Group: g1, ID: id7, Time: clock.t, Sender: []byte("x"), Text: "dup"}); err != nil || ok {
		t.Fatalf("migrated message not deduplicated: %v %v", ok, err)
	}
	if err := db.DeleteMessage(g1, id7); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.pdb.EstimateDiskUsage([]byte{spaceViewByID}, []byte{spaceViewByID + 1}); n != 0 {
		it, _ := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceViewByID}, UpperBound: []byte{spaceViewByID + 1}})
		if it.First() {
			t.Fatal("schema-1 id index survived the migration")
		}
		it.Close()
	}
}

func be64(v uint64) []byte {
	return []byte{byte(v >> 56), byte(v >> 48), byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// TestCorruptRecords overwrites records with garbage and checks every read
// path reports ErrCorrupt instead of panicking or returning junk.
func TestCorruptRecords(t *testing.T) {
	db, _, clock := openMem(t)
	if err := db.PutGroup(g1, GroupMeta{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutEpochState(g1, EpochState{EID: eid(1), Epoch: 1, State: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendLog(g1, 1, hash(1), []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutOutbox(OutboxEntry{Group: g1, ID: mid(1), State: OutboxPending}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddMessage(msg(g1, 1, clock.t, "ann", "hello")); err != nil {
		t.Fatal(err)
	}
	garbage := [][]byte{{}, {0xff}, {1}, {1, 0x80}, {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	cases := []struct {
		name string
		key  []byte
		read func() error
	}{
		{"group", groupKey(g1), func() error { _, err := db.Group(g1); return err }},
		{"epoch state", epochKey(spaceEpochState, g1, eid(1)), func() error { _, err := db.EpochState(g1, eid(1)); return err }},
		{"log", logKey(g1, 1, hash(1)), func() error { _, err := db.LogEntry(g1, 1, hash(1)); return err }},
		{"outbox", outboxKey(g1, mid(1)), func() error { _, err := db.Outbox(g1, mid(1)); return err }},
		{"view", viewKey(g1, clock.t.UnixNano(), mid(1), []byte("ann")), func() error { _, err := db.Message(g1, mid(1)); return err }},
		{"dedup marker", dedupKey(g1, mid(1), []byte("ann")), func() error { _, err := db.Message(g1, mid(1)); return err }},
		{"posting block", postingKey("hello", 1), func() error { _, err := db.Search(t.Context(), Query{Text: "hello"}); return err }},
	}
	for _, c := range cases {
		old, err := db.get(c.key)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, g := range garbage {
			if err := db.pdb.Set(c.key, g, nil); err != nil {
				t.Fatal(err)
			}
			if err := c.read(); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s with value %x: err = %v, want ErrCorrupt", c.name, g, err)
			}
		}
		if err := db.pdb.Set(c.key, old, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.read(); err != nil {
			t.Errorf("%s restored: %v", c.name, err)
		}
	}
}

func TestClosed(t *testing.T) {
	db, _, _ := openMem(t)
	db.Close()
	if err := db.SetIdentity([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if _, err := db.Search(t.Context(), Query{Text: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("search after close: %v", err)
	}
	if err := db.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

func TestDiskUsage(t *testing.T) {
	db, _, clock := openMem(t)
	var msgs []Message
	for i := 0; i < 500; i++ {
		var id MessageID
		id[0], id[1] = byte(i>>8), byte(i)
		msgs = append(msgs, Message{Group: g1, ID: id, Time: clock.t.Add(time.Duration(i) * time.Second), Sender: []byte("a"), Text: strings.Repeat("words and more words ", 10)})
	}
	if _, err := db.AddMessages(msgs); err != nil {
		t.Fatal(err)
	}
	if err := db.PurgeDeleted(t.Context()); err != nil { // flushes
		t.Fatal(err)
	}
	u, err := db.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u.View == 0 || u.Index == 0 || u.Total() < u.View+u.Index {
		t.Fatalf("DiskUsage = %+v", u)
	}
}

// Regression: LogByEpoch served an epoch's messages ordered by hash, which
// for a resync of hundreds of one sender's messages is a random generation
// order; the receiver keeps only MaxSkippedKeys skipped keys per sender and
// lost the rest (bob held 1079 of 2001 after a resync in BenchmarkResync).
func TestLogByEpochArrivalOrder(t *testing.T) {
	db, _, _ := openMem(t)
	const n = 300
	for i := range n {
		var h MessageHash
		h[0] = byte(n - i) // hashes in descending order of arrival
		h[1] = byte((n - i) >> 8)
		h[0], h[1] = h[1], h[0]
		if _, err := db.AppendLog(g1, 7, h, []byte{byte(i), byte(i >> 8)}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := db.LogByEpoch(g1, 7)
	if err != nil || len(es) != n {
		t.Fatalf("LogByEpoch: %d entries, %v", len(es), err)
	}
	for i, e := range es {
		if got := int(e.Message[0]) | int(e.Message[1])<<8; got != i {
			t.Fatalf("entry %d is message %d: not arrival order", i, got)
		}
	}
}
