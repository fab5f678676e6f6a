package store

import (
	"errors"
	"testing"
)

// TestDeleteGroupWithSettings: DeleteGroup deletes the named settings in
// the same batch as the group (the node's per-group marks), leaves other
// settings alone, tolerates settings that do not exist, and with an
// invalid setting name deletes nothing at all.
func TestDeleteGroupWithSettings(t *testing.T) {
	db, fs, clock := openMem(t)
	if err := db.PutGroup(g1, GroupMeta{Name: "one"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"leaving.g1", "unread.g1", "keep"} {
		if err := db.SetSetting(name, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteGroup(g1, "leaving.g1", ""); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("invalid setting name: %v", err)
	}
	if _, err := db.Group(g1); err != nil {
		t.Fatalf("a refused DeleteGroup deleted the group: %v", err)
	}
	if _, err := db.Setting("leaving.g1"); err != nil {
		t.Fatalf("a refused DeleteGroup deleted a setting: %v", err)
	}
	if err := db.DeleteGroup(g1, "leaving.g1", "unread.g1", "never.set"); err != nil {
		t.Fatal(err)
	}
	if !db.PurgePending() {
		t.Fatal("deleted settings not queued for the purge")
	}
	db = reopen(t, db, fs, clock)
	if _, err := db.Group(g1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("group: %v", err)
	}
	for _, name := range []string{"leaving.g1", "unread.g1"} {
		if _, err := db.Setting(name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("setting %s: %v", name, err)
		}
	}
	if _, err := db.Setting("keep"); err != nil {
		t.Fatalf("unrelated setting: %v", err)
	}
}
