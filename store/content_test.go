package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func searchIDs(t *testing.T, db *DB, q string) []MessageID {
	t.Helper()
	res, err := db.Search(context.Background(), Query{Text: q, Group: g1})
	if err != nil {
		t.Fatalf("search %q: %v", q, err)
	}
	var out []MessageID
	for _, h := range res.Hits {
		out = append(out, h.Message.ID)
	}
	return out
}

func TestMetaRoundTripAndReopen(t *testing.T) {
	db, fs, clock := openMem(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := msg(g1, 1, at, "alice", "with meta")
	m.Meta = []byte{1, 2, 3}
	if _, err := db.AddMessage(m); err != nil {
		t.Fatal(err)
	}
	plain := msg(g1, 2, at.Add(time.Second), "alice", "plain")
	if _, err := db.AddMessage(plain); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, fs, clock)
	got, err := db.MessageFrom(g1, []byte("alice"), mid(1))
	if err != nil || string(got.Meta) != "\x01\x02\x03" || got.Flags != 0 {
		t.Fatalf("meta message: %+v, %v", got, err)
	}
	ms, err := db.Messages(g1, time.Time{}, 10)
	if err != nil || len(ms) != 2 || ms[1].Meta != nil {
		t.Fatalf("messages: %+v, %v", ms, err)
	}
	bad := msg(g1, 3, at, "alice", "x")
	bad.Flags = recordHasMeta
	if _, err := db.AddMessage(bad); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("reserved flag accepted: %v", err)
	}
}

func TestReplaceTextFollowsSearch(t *testing.T) {
	db, fs, clock := openMem(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.AddMessage(msg(g1, 1, at, "alice", "deploy tomorow")); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceText(g1, []byte("alice"), mid(1), "deploy tomorrow"); err != nil {
		t.Fatal(err)
	}
	if ids := searchIDs(t, db, "tomorow"); len(ids) != 0 {
		t.Fatalf("old text still found: %v", ids)
	}
	if ids := searchIDs(t, db, "tomorrow"); len(ids) != 1 || ids[0] != mid(1) {
		t.Fatalf("new text not found: %v", ids)
	}
	if err := db.ReplaceText(g1, []byte("bob"), mid(1), "not bob's"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another sender's message replaced: %v", err)
	}
	// Flags set for delivery keep the edit.
	if err := db.SetMessageFlags(g1, mid(1), FlagResent); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, fs, clock)
	m, err := db.MessageFrom(g1, []byte("alice"), mid(1))
	if err != nil || m.Text != "deploy tomorrow" || m.Flags != FlagEdited|FlagResent {
		t.Fatalf("after reopen: %+v, %v", m, err)
	}
	if ids := searchIDs(t, db, "tomorrow"); len(ids) != 1 {
		t.Fatalf("index after reopen: %v", ids)
	}
}

func TestOpsAndTombstone(t *testing.T) {
	db, _, _ := openMem(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	op := Op{Group: g1, Target: mid(1), Kind: 3, Sender: []byte("alice"), ID: mid(9), Time: at, Value: []byte("secret edit")}
	if added, err := db.PutOp(op, false, true); err != nil || !added {
		t.Fatalf("put: %v %v", added, err)
	}
	if added, err := db.PutOp(op, false, true); err != nil || added {
		t.Fatalf("duplicate put: %v %v", added, err)
	}
	react := Op{Group: g1, Target: mid(1), Kind: 2, Sender: []byte("bob"), ID: mid(8), Time: at, Value: []byte("+")}
	del := Op{Group: g1, Target: mid(1), Kind: 4, Sender: []byte("alice"), ID: mid(7), Time: at}
	for _, o := range []Op{react, del} {
		if _, err := db.PutOp(o, false, true); err != nil {
			t.Fatal(err)
		}
	}
	ops, err := db.Ops(g1, mid(1))
	if err != nil || len(ops) != 3 || string(ops[1].Value) != "secret edit" || !ops[1].Time.Equal(at) {
		t.Fatalf("ops: %+v, %v", ops, err)
	}
	m := msg(g1, 1, at, "alice", "secret original")
	m.Meta = []byte("file name")
	if _, err := db.AddMessage(m); err != nil {
		t.Fatal(err)
	}
	if err := db.PutOutbox(OutboxEntry{Group: g1, ID: mid(1), State: OutboxSent, Plaintext: []byte("secret original"), Created: at}); err != nil {
		t.Fatal(err)
	}
	if err := db.Tombstone(g1, []byte("alice"), mid(1), []byte{1}, []uint8{2, 3}, []MessageID{mid(1)}); err != nil {
		t.Fatal(err)
	}
	got, err := db.MessageFrom(g1, []byte("alice"), mid(1))
	if err != nil || got.Text != "" || got.Flags != FlagDeleted || string(got.Meta) != "\x01" {
		t.Fatalf("tombstone: %+v, %v", got, err)
	}
	if ids := searchIDs(t, db, "secret"); len(ids) != 0 {
		t.Fatalf("deleted text found: %v", ids)
	}
	ops, err = db.Ops(g1, mid(1))
	if err != nil || len(ops) != 1 || ops[0].Kind != 4 {
		t.Fatalf("ops after tombstone: %+v, %v", ops, err)
	}
	if _, err := db.Outbox(g1, mid(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("outbox entry kept: %v", err)
	}
	if !db.PurgePending() {
		t.Fatal("tombstone noted nothing to purge")
	}
	if err := db.DeleteGroup(g1); err != nil {
		t.Fatal(err)
	}
	if ops, err := db.GroupOps(g1); err != nil || len(ops) != 0 {
		t.Fatalf("ops after group deletion: %v, %v", ops, err)
	}
}

// TestExtraTextSearchable: a message's extra text (a file's name) is
// searchable, survives a reopen and an edit, and goes with a delete.
func TestExtraTextSearchable(t *testing.T) {
	db, fs, clock := openMem(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := msg(g1, 1, at, "alice", "the slides")
	m.Meta, m.Extra = []byte{1}, "quarterly-report.pdf"
	if _, err := db.AddMessage(m); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, fs, clock)
	if ids := searchIDs(t, db, "quarterly"); len(ids) != 1 {
		t.Fatalf("file name not found: %v", ids)
	}
	if err := db.ReplaceText(g1, []byte("alice"), mid(1), "the final slides"); err != nil {
		t.Fatal(err)
	}
	if ids := searchIDs(t, db, "quarterly final"); len(ids) != 1 {
		t.Fatalf("after edit: %v", ids)
	}
	got, _ := db.MessageFrom(g1, []byte("alice"), mid(1))
	if got.Extra != "quarterly-report.pdf" || got.Text != "the final slides" {
		t.Fatalf("record: %+v", got)
	}
	if err := db.Tombstone(g1, []byte("alice"), mid(1), []byte{1}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if ids := searchIDs(t, db, "quarterly"); len(ids) != 0 {
		t.Fatalf("deleted file name found: %v", ids)
	}
	if got, _ := db.MessageFrom(g1, []byte("alice"), mid(1)); got.Extra != "" {
		t.Fatalf("extra kept after delete: %q", got.Extra)
	}
}
