package store

import (
	"bytes"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// syncCounter counts the file syncs Pebble issues through an errorfs.
type syncCounter struct{ n atomic.Int64 }

func (c *syncCounter) String() string { return "sync counter" }

func (c *syncCounter) MaybeError(op errorfs.Op) error {
	switch op.Kind {
	case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
		c.n.Add(1)
	}
	return nil
}

func openCounted(t *testing.T) (*DB, *syncCounter) {
	t.Helper()
	c := &syncCounter{}
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	db, err := Open(testOptions(errorfs.Wrap(vfs.NewMem(), c), "db", clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, c
}

// oneMessageBatch fills b with what sending one message writes.
func oneMessageBatch(t *testing.T, b *Batch, id byte, at time.Time) {
	t.Helper()
	must(t, b.PutOutbox(OutboxEntry{Group: g1, ID: mid(id), State: OutboxSent, Epoch: 3, Plaintext: []byte("hello"), Created: at}))
	must(t, b.AddMessage(msg(g1, id, at, "alice", "hello batch world")))
	must(t, b.PutEpochState(g1, EpochState{EID: eid(3), Epoch: 3, State: []byte("state after sending")}))
	must(t, b.AppendLog(g1, 3, hash(id), []byte("ciphertext")))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBatchCommitsAllWritesWithOneSync(t *testing.T) {
	db, syncs := openCounted(t)
	at := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)

	before := syncs.n.Load()
	b := db.NewBatch()
	oneMessageBatch(t, b, 1, at)
	must(t, b.PutGroup(g1, GroupMeta{Name: "g", Created: at, Data: []byte("order")}))
	applied, err := b.Commit()
	must(t, err)
	if got := syncs.n.Load() - before; got != 1 {
		t.Fatalf("batch of %d writes synced %d times, want 1", b.Len(), got)
	}
	if !equalBools(applied, []bool{true, true, true, true, true}) {
		t.Fatalf("applied %v", applied)
	}

	// The same writes one call at a time sync once each: what the batch
	// saves.
	before = syncs.n.Load()
	must(t, db.PutOutbox(OutboxEntry{Group: g1, ID: mid(2), State: OutboxSent, Epoch: 3, Plaintext: []byte("x"), Created: at}))
	_, err = db.AddMessage(msg(g1, 2, at, "alice", "two"))
	must(t, err)
	must(t, db.PutEpochState(g1, EpochState{EID: eid(3), Epoch: 3, State: []byte("s")}))
	_, err = db.AppendLog(g1, 3, hash(2), []byte("c2"))
	must(t, err)
	if got := syncs.n.Load() - before; got != 4 {
		t.Fatalf("four single writes synced %d times, want 4", got)
	}

	o, err := db.Outbox(g1, mid(1))
	must(t, err)
	if o.State != OutboxSent || string(o.Plaintext) != "hello" {
		t.Fatalf("outbox %+v", o)
	}
	m, err := db.Message(g1, mid(1))
	must(t, err)
	if m.Text != "hello batch world" {
		t.Fatalf("message %+v", m)
	}
	res, err := db.Search(t.Context(), Query{Text: "batch", Limit: 5})
	must(t, err)
	if len(res.Hits) != 1 || res.Hits[0].Message.ID != mid(1) {
		t.Fatalf("search after batch: %+v", res.Hits)
	}
	e, err := db.LogEntry(g1, 3, hash(1))
	must(t, err)
	if string(e.Message) != "ciphertext" || e.Seq != 1 {
		t.Fatalf("log entry %+v", e)
	}
	if _, err := db.EpochState(g1, eid(3)); err != nil {
		t.Fatal(err)
	}
	gm, err := db.Group(g1)
	must(t, err)
	if string(gm.Data) != "order" {
		t.Fatalf("group %+v", gm)
	}
}

func TestBatchEmptyCommitDoesNotSync(t *testing.T) {
	db, syncs := openCounted(t)
	before := syncs.n.Load()
	applied, err := db.NewBatch().Commit()
	if err != nil || len(applied) != 0 {
		t.Fatalf("empty commit: %v %v", applied, err)
	}
	if got := syncs.n.Load() - before; got != 0 {
		t.Fatalf("empty batch synced %d times", got)
	}
}

func TestBatchDedupAgainstDatabaseAndItself(t *testing.T) {
	db, fs, clock := openMem(t)
	at := clock.t
	if _, err := db.AddMessage(msg(g1, 1, at, "a", "old")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendLog(g1, 1, hash(1), []byte("old")); err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	must(t, b.AddMessage(msg(g1, 1, at, "a", "again")))   // seen in the database
	must(t, b.AddMessage(msg(g1, 2, at, "a", "new")))     // new
	must(t, b.AddMessage(msg(g1, 2, at, "a", "new dup"))) // seen earlier in the batch
	must(t, b.AppendLog(g1, 1, hash(1), []byte("old")))   // logged in the database
	must(t, b.AppendLog(g1, 1, hash(2), []byte("new")))   // new
	must(t, b.AppendLog(g1, 1, hash(2), []byte("new")))   // earlier in the batch
	must(t, b.AppendLog(g2, 1, hash(2), []byte("other"))) // same hash, other group
	applied, err := b.Commit()
	must(t, err)
	want := []bool{false, true, false, false, true, false, true}
	if !equalBools(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
	m, err := db.Message(g1, mid(2))
	must(t, err)
	if m.Text != "new" {
		t.Fatalf("the first copy in the batch must win, got %q", m.Text)
	}
	// Sequence numbers continue without gaps or reuse, and survive a
	// restart.
	db = reopen(t, db, fs, clock)
	var seqs []uint64
	for _, g := range [][]byte{g1, g2} {
		es, err := db.LogSince(g, 0, 10)
		must(t, err)
		for _, e := range es {
			seqs = append(seqs, e.Seq)
		}
	}
	if len(seqs) != 3 || seqs[0] != 1 || seqs[1] != 2 || seqs[2] != 3 {
		t.Fatalf("sequence numbers %v, want [1 2 3]", seqs)
	}
	added, err := db.AppendLog(g1, 9, hash(9), []byte("next"))
	must(t, err)
	e, err := db.LogEntry(g1, 9, hash(9))
	must(t, err)
	if !added || e.Seq != 4 {
		t.Fatalf("next log entry after reopen: added %v seq %d, want seq 4", added, e.Seq)
	}
	if db.stats.docs != 2 {
		t.Fatalf("index statistics count %d documents, want 2", db.stats.docs)
	}
}

func TestBatchOutboxStateFollowsEarlierWrites(t *testing.T) {
	db, _, clock := openMem(t)
	at := clock.t
	must(t, db.PutOutbox(OutboxEntry{Group: g1, ID: mid(1), State: OutboxPending, Plaintext: []byte("stored"), Created: at}))

	b := db.NewBatch()
	must(t, b.SetOutboxState(g1, mid(1), OutboxSent, 4)) // in the database
	must(t, b.PutOutbox(OutboxEntry{Group: g1, ID: mid(2), State: OutboxPending, Plaintext: []byte("in batch"), Created: at}))
	must(t, b.SetOutboxState(g1, mid(2), OutboxSent, 5)) // put earlier in the batch
	must(t, b.SetOutboxState(g1, mid(3), OutboxSent, 6)) // nowhere: skipped
	must(t, b.PutOutbox(OutboxEntry{Group: g1, ID: mid(4), State: OutboxPending, Plaintext: []byte("gone"), Created: at}))
	must(t, b.DeleteOutbox(g1, mid(4)))
	must(t, b.SetOutboxState(g1, mid(4), OutboxSent, 7)) // deleted earlier in the batch: skipped
	must(t, b.AppendLog(g1, 5, hash(5), []byte("ct")))   // still committed
	applied, err := b.Commit()
	must(t, err)
	want := []bool{true, true, true, false, true, true, false, true}
	if !equalBools(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
	for _, c := range []struct {
		id    byte
		epoch uint64
		text  string
	}{{1, 4, "stored"}, {2, 5, "in batch"}} {
		e, err := db.Outbox(g1, mid(c.id))
		must(t, err)
		if e.State != OutboxSent || e.Epoch != c.epoch || string(e.Plaintext) != c.text {
			t.Fatalf("outbox %d: %+v", c.id, e)
		}
	}
	for _, id := range []byte{3, 4} {
		if _, err := db.Outbox(g1, mid(id)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("outbox %d: %v, want ErrNotFound", id, err)
		}
	}
	if _, err := db.LogEntry(g1, 5, hash(5)); err != nil {
		t.Fatal(err)
	}
}

func TestBatchRejectsBadWritesAndSecondCommit(t *testing.T) {
	db, _, clock := openMem(t)
	b := db.NewBatch()
	bad := []error{
		b.AppendLog(nil, 1, hash(1), []byte("x")),
		b.AppendLog(g1, 1, hash(1), nil),
		b.AppendLog(g1, 1, hash(1), make([]byte, MaxMLSMessageLen+1)),
		b.AddMessage(Message{Group: g1, ID: mid(1), Time: clock.t}), // no sender
		b.PutEpochState(g1, EpochState{EID: eid(1)}),                // empty state
		b.PutGroup(g1, GroupMeta{Name: strings.Repeat("n", MaxSettingNameLen+1)}),
		b.PutOutbox(OutboxEntry{Group: g1, ID: mid(1), State: 9}),
		b.SetOutboxState(g1, mid(1), 0, 1),
		b.DeleteOutbox(make([]byte, MaxGroupIDLen+1), mid(1)),
	}
	for i, err := range bad {
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("bad write %d: %v, want ErrInvalidArgument", i, err)
		}
	}
	if b.Len() != 0 {
		t.Fatalf("rejected writes were added: %d", b.Len())
	}
	must(t, b.AppendLog(g1, 1, hash(1), []byte("x")))
	if _, err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("second commit: %v", err)
	}
	db.Close()
	b = db.NewBatch()
	must(t, b.AppendLog(g1, 2, hash(2), []byte("x")))
	if _, err := b.Commit(); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit on closed DB: %v", err)
	}
}

// The batch's copy of an epoch state is a secret: zeroed once committed or
// discarded.
func TestBatchZeroesStateCopies(t *testing.T) {
	db, _, _ := openMem(t)
	state := []byte("secret epoch state bytes")
	for _, commit := range []bool{true, false} {
		b := db.NewBatch()
		must(t, b.PutEpochState(g1, EpochState{EID: eid(1), Epoch: 1, State: state}))
		held := b.ops[0].val
		if !bytes.Contains(held, state) {
			t.Fatal("batch does not hold the encoded state")
		}
		if commit {
			if _, err := b.Commit(); err != nil {
				t.Fatal(err)
			}
		} else {
			b.Discard()
		}
		if bytes.Contains(held, state) || !bytes.Equal(held, make([]byte, len(held))) {
			t.Fatalf("commit=%v: state copy not zeroed", commit)
		}
	}
	st, err := db.EpochState(g1, eid(1))
	must(t, err)
	if !bytes.Equal(st.State, state) {
		t.Fatalf("stored state %q", st.State)
	}
}

// CommitNoSync applies at once (reads see it) without a sync; a crash
// before the next sync may lose it, never a write followed by a synced one;
// DB.Sync makes it durable.
func TestBatchCommitNoSyncThenSync(t *testing.T) {
	mem := vfs.NewCrashableMem()
	c := &syncCounter{}
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	db, err := Open(testOptions(errorfs.Wrap(mem, c), "db", clock))
	must(t, err)
	defer db.Close()
	at := clock.t

	noSync := func(id byte) {
		t.Helper()
		b := db.NewBatch()
		must(t, b.AddMessage(msg(g1, id, at, "bob", "received")))
		must(t, b.AppendLog(g1, 1, hash(id), []byte("ct")))
		before := c.n.Load()
		applied, err := b.CommitNoSync()
		must(t, err)
		if !equalBools(applied, []bool{true, true}) {
			t.Fatalf("applied %v", applied)
		}
		if got := c.n.Load() - before; got != 0 {
			t.Fatalf("CommitNoSync synced %d times", got)
		}
		if seen, err := db.Seen(g1, []byte("bob"), mid(id)); err != nil || !seen {
			t.Fatalf("no-sync write not visible: %v %v", seen, err)
		}
	}
	held := func(fs *vfs.MemFS, id byte) bool {
		t.Helper()
		d, err := Open(testOptions(fs, "db", clock))
		must(t, err)
		defer d.Close()
		_, errM := d.Message(g1, mid(id))
		_, errL := d.LogEntry(g1, 1, hash(id))
		if (errM == nil) != (errL == nil) {
			t.Fatalf("message %d half there after a crash: view %v, log %v", id, errM, errL)
		}
		return errM == nil
	}

	noSync(1)
	if held(mem.CrashClone(vfs.CrashCloneCfg{}), 1) {
		t.Fatal("a no-sync write survived a crash that dropped every unsynced byte: the test proves nothing")
	}
	before := c.n.Load()
	must(t, db.Sync())
	if got := c.n.Load() - before; got != 1 {
		t.Fatalf("Sync synced %d times, want 1", got)
	}
	if !held(mem.CrashClone(vfs.CrashCloneCfg{}), 1) {
		t.Fatal("message lost after Sync")
	}

	// A synced write makes the earlier no-sync writes durable too.
	noSync(2)
	must(t, db.PutOutbox(OutboxEntry{Group: g1, ID: mid(9), State: OutboxPending, Plaintext: []byte("p"), Created: at}))
	if !held(mem.CrashClone(vfs.CrashCloneCfg{}), 2) {
		t.Fatal("no-sync write lost although a synced write followed it")
	}
}

func TestDeleteOutboxDoesNotSync(t *testing.T) {
	db, syncs := openCounted(t)
	must(t, db.PutOutbox(OutboxEntry{Group: g1, ID: mid(1), State: OutboxSent, Epoch: 1, Plaintext: []byte("p"), Created: time.Now()}))
	before := syncs.n.Load()
	must(t, db.DeleteOutbox(g1, mid(1)))
	if got := syncs.n.Load() - before; got != 0 {
		t.Fatalf("DeleteOutbox synced %d times", got)
	}
	if _, err := db.Outbox(g1, mid(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted entry still read back: %v", err)
	}
}
