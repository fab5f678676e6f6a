package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"grove/p2p"
	"grove/store"
)

// purgeNode is realNode (libp2p on 127.0.0.1, Pebble on disk in home) with
// a short purge interval.
func purgeNode(t *testing.T, home, name string) *Node {
	t.Helper()
	cfg := Config{Home: home, Name: name, Logger: testLogger().With("node", name),
		P2P: p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HeartbeatInterval: 100 * time.Millisecond, Logger: testLogger()}}
	testTiming(&cfg)
	cfg.PurgeEvery = 50 * time.Millisecond
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

// filesHolding lists the files under home whose bytes contain secret.
func filesHolding(t *testing.T, home string, secret []byte) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed by Pebble while we walk
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, secret) {
			rel, _ := filepath.Rel(home, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRealFinalisedEpochSecretsPurged: once an epoch is final on a real
// daemon, no file of its home (the Pebble directory, WAL included) holds
// that epoch's secrets any more. The epoch authenticator stands for them:
// a secret of the epoch's key schedule that the serialised state of that
// epoch holds and no later state does.
func TestRealFinalisedEpochSecretsPurged(t *testing.T) {
	checkLeaks(t)
	home := t.TempDir()
	alice := purgeNode(t, home, "alice")
	defer alice.Close()
	ctx := ctxT(t, 60*time.Second)
	grp, err := alice.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	a, err := alice.lookup(grp.ID)
	if err != nil {
		t.Fatal(err)
	}
	var secret []byte
	var epoch uint64
	var eid store.EpochID
	if err := a.do(ctx, func() error {
		e, g := a.head()
		secret, epoch, eid = g.EpochAuthenticator(), g.Epoch(), store.EpochID(e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(secret) < 16 {
		t.Fatalf("epoch authenticator of %d bytes", len(secret))
	}
	// The state is on disk now (so the scan below can find what it
	// looks for).
	if files := filesHolding(t, home, secret); len(files) == 0 {
		t.Fatal("the epoch's secret is not on disk before finality: the scan proves nothing")
	}
	if err := alice.Rotate(ctx, grp.ID); err != nil {
		t.Fatal(err)
	}
	gid := decodeHexT(t, grp.ID)
	eventually(t, 20*time.Second, "epoch final", func() error {
		m, err := alice.db.EpochMarker(gid, eid)
		if err != nil {
			return err
		}
		if m.Mark != store.MarkFinal {
			return fmt.Errorf("epoch %d marker %+v", epoch, m)
		}
		return nil
	})
	eventually(t, 20*time.Second, "secret gone from disk", func() error {
		if files := filesHolding(t, home, secret); len(files) > 0 {
			return fmt.Errorf("epoch %d's secret still in %v", epoch, files)
		}
		return nil
	})
}

// TestRealLeftGroupPlaintextPurged: after leaving a group on a real
// daemon, no file of its home holds the plaintext of a message of it.
func TestRealLeftGroupPlaintextPurged(t *testing.T) {
	checkLeaks(t)
	home := t.TempDir()
	alice := purgeNode(t, home, "alice")
	defer alice.Close()
	ctx := ctxT(t, 60*time.Second)
	grp, err := alice.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	var r [12]byte
	rand.Read(r[:])
	marker := "marker" + hex.EncodeToString(r[:])
	if _, err := alice.Send(ctx, grp.ID, "the secret is "+marker); err != nil {
		t.Fatal(err)
	}
	if files := filesHolding(t, home, []byte(marker)); len(files) == 0 {
		t.Fatal("the message is not on disk before leaving: the scan proves nothing")
	}
	if err := alice.Leave(ctx, grp.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "plaintext gone from disk", func() error {
		if files := filesHolding(t, home, []byte(marker)); len(files) > 0 {
			return fmt.Errorf("plaintext still in %v", files)
		}
		return nil
	})
}
