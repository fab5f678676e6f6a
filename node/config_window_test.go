package node

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"grove/mls"
	"grove/store"
)

// TestStoredGroupGetsCurrentWindow: a group whose epoch states were stored
// with the old 256-key skipped window (before groupConfig raised it) is
// loaded with the current window, which then carries to later epochs.
func TestStoredGroupGetsCurrentWindow(t *testing.T) {
	checkLeaks(t)
	home := t.TempDir()
	alice := realNode(t, home, "alice")
	ctx := ctxT(t, 30*time.Second)
	g, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	alice.Close()

	old := mls.SecretTreeConfig{MaxForwardGeneration: mls.DefaultMaxForwardGeneration, MaxSkippedKeys: mls.DefaultMaxSkippedKeys}
	db, err := store.Open(store.Options{Dir: filepath.Join(home, "db"), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	gid := decodeHexT(t, g.ID)
	states, err := db.EpochStates(gid)
	if err != nil || len(states) == 0 {
		t.Fatalf("stored states: %d %v", len(states), err)
	}
	for _, st := range states {
		mg, err := mls.UnmarshalGroup(st.State)
		if err != nil {
			t.Fatal(err)
		}
		if err := mg.SetSecretTreeConfig(old); err != nil {
			t.Fatal(err)
		}
		if st.State, err = mg.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
		if err := db.PutEpochState(gid, st); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	alice = realNode(t, home, "alice")
	defer alice.Close()
	want := groupConfig().SecretTree
	if want.MaxSkippedKeys <= old.MaxSkippedKeys {
		t.Fatalf("groupConfig's window %d is no larger than the old one: the test lost its point", want.MaxSkippedKeys)
	}
	window := func() mls.SecretTreeConfig {
		a := groupActorOf(t, alice, g.ID)
		var c mls.SecretTreeConfig
		a.do(context.Background(), func() error {
			_, hg := a.head()
			c = hg.SecretTreeConfig()
			return nil
		})
		return c
	}
	if got := window(); got != want {
		t.Fatalf("loaded with %+v, want %+v", got, want)
	}
	// And the next epoch inherits it.
	e := groupEpoch(t, alice, g.ID)
	if err := alice.Rotate(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "rotated", func() error {
		if groupEpoch(t, alice, g.ID) == e {
			return errors.New("not yet")
		}
		return nil
	})
	if got := window(); got != want {
		t.Fatalf("next epoch on %+v, want %+v", got, want)
	}
}
