package store

import (
	"errors"
	"testing"
)

// TestDedupBoundToSender: message ids are chosen by senders, so a member
// who sends another member's id (and time) first must not suppress or
// overwrite that member's message; the same sender's copies (re-sends
// across epochs keep the id) are still deduplicated.
func TestDedupBoundToSender(t *testing.T) {
	db, fs, clock := openMem(t)
	at := clock.t
	added, err := db.AddMessages([]Message{
		msg(g1, 1, at, "mallory", "copied id and time"),
		msg(g1, 1, at, "ann", "the real one"),
		msg(g1, 1, at, "ann", "ann's re-send in the same batch"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false}; !equalBools(added, want) {
		t.Fatalf("added = %v, want %v", added, want)
	}
	if ok, err := db.AddMessage(msg(g1, 1, at, "ann", "ann's re-send in a later epoch")); err != nil || ok {
		t.Fatalf("re-send of the same sender added=%v err=%v", ok, err)
	}
	db = reopen(t, db, fs, clock)
	ms, err := db.Messages(g1, at, 10)
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{}
	for _, m := range ms {
		texts[string(m.Sender)] = m.Text
	}
	if len(ms) != 2 || texts["ann"] != "the real one" || texts["mallory"] != "copied id and time" {
		t.Fatalf("view = %+v", ms)
	}
	res, err := db.Search(t.Context(), Query{Text: "real"})
	if err != nil || len(res.Hits) != 1 || string(res.Hits[0].Message.Sender) != "ann" || res.Hits[0].Message.Text != "the real one" {
		t.Fatalf("search = %+v, %v", res, err)
	}
	m, err := db.MessageFrom(g1, []byte("ann"), mid(1))
	if err != nil || m.Text != "the real one" {
		t.Fatalf("MessageFrom = %+v, %v", m, err)
	}
	if _, err := db.MessageFrom(g1, []byte("bob"), mid(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MessageFrom of a sender without it: %v", err)
	}
	for _, s := range []string{"ann", "mallory"} {
		if seen, err := db.Seen(g1, []byte(s), mid(1)); err != nil || !seen {
			t.Fatalf("Seen(%s) = %v, %v", s, seen, err)
		}
	}
	if seen, err := db.Seen(g1, []byte("bob"), mid(1)); err != nil || seen {
		t.Fatalf("Seen(bob) = %v, %v", seen, err)
	}
	if n, err := db.MarkSeen(g1, []byte("bob"), mid(1)); err != nil || !n {
		t.Fatalf("MarkSeen(bob) = %v, %v", n, err)
	}
	if ok, err := db.AddMessage(msg(g1, 1, at, "bob", "dropped before")); err != nil || ok {
		t.Fatalf("message marked seen added=%v err=%v", ok, err)
	}
	if err := db.SetMessageFlags(g1, mid(1), FlagResent); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMessage(g1, mid(1)); err != nil {
		t.Fatal(err)
	}
	if ms, err := db.Messages(g1, at, 10); err != nil || len(ms) != 0 {
		t.Fatalf("after delete: %+v, %v", ms, err)
	}
	if ok, err := db.AddMessage(msg(g1, 1, at, "mallory", "late copy")); err != nil || ok {
		t.Fatalf("late copy of a deleted message added=%v err=%v", ok, err)
	}
}

// TestDedupLegacyKeys: records written before keys named the sender (a
// dedup marker and view record keyed by group and id only) are still read,
// found, deleted, and deduplicate their id for every sender, as they did.
func TestDedupLegacyKeys(t *testing.T) {
	db, fs, clock := openMem(t)
	at := clock.t
	old := msg(g1, 7, at, "ann", "from before the upgrade")
	if _, err := db.AddMessage(old); err != nil {
		t.Fatal(err)
	}
	// Rewrite it under the old keys.
	nk, dk := viewKey(g1, at.UnixNano(), mid(7), []byte("ann")), dedupKey(g1, mid(7), []byte("ann"))
	for _, k := range [][2][]byte{{nk, legacyViewKey(g1, at.UnixNano(), mid(7))}, {dk, dedupPrefix(g1, mid(7))}} {
		v, err := db.get(k[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := db.pdb.Delete(k[0], nil); err != nil {
			t.Fatal(err)
		}
		if err := db.pdb.Set(k[1], v, nil); err != nil {
			t.Fatal(err)
		}
	}
	db = reopen(t, db, fs, clock) // as after the upgrade
	for _, s := range []string{"ann", "mallory"} {
		if ok, err := db.AddMessage(msg(g1, 7, at, s, "again")); err != nil || ok {
			t.Fatalf("%s's copy of a legacy id added=%v err=%v", s, ok, err)
		}
	}
	ms, err := db.Messages(g1, at, 10)
	if err != nil || len(ms) != 1 || ms[0].Text != old.Text {
		t.Fatalf("Messages = %+v, %v", ms, err)
	}
	if m, err := db.MessageFrom(g1, []byte("ann"), mid(7)); err != nil || m.Text != old.Text {
		t.Fatalf("MessageFrom = %+v, %v", m, err)
	}
	if _, err := db.MessageFrom(g1, []byte("mallory"), mid(7)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("legacy record found under another sender: %v", err)
	}
	if res, err := db.Search(t.Context(), Query{Text: "upgrade"}); err != nil || len(res.Hits) != 1 || res.Hits[0].Message.Text != old.Text {
		t.Fatalf("search = %+v, %v", res, err)
	}
	if err := db.DeleteMessage(g1, mid(7)); err != nil {
		t.Fatal(err)
	}
	if ms, err := db.Messages(g1, at, 10); err != nil || len(ms) != 0 {
		t.Fatalf("after delete: %+v, %v", ms, err)
	}
}
