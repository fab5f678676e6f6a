package p2p

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func sealKey(t *testing.T) []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// TestSealedIdentity: a key created sealed has no clear copy on disk,
// reloads to the same peer ID with its key, and fails with ErrCorruptKey,
// file unchanged, without it or with another key.
func TestSealedIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.key")
	k := sealKey(t)
	key, err := LoadOrCreateSealedIdentity(path, k)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := key.Raw()
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(onDisk, raw[:32]) {
		t.Fatal("the private key is on disk in the clear")
	}
	again, err := LoadOrCreateSealedIdentity(path, k)
	if err != nil || !again.Equals(key) {
		t.Fatalf("reload: %v", err)
	}
	for _, wrong := range [][]byte{nil, sealKey(t)} {
		if _, err := LoadOrCreateSealedIdentity(path, wrong); !errors.Is(err, ErrCorruptKey) {
			t.Errorf("load with key %x: %v, want ErrCorruptKey", wrong, err)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, onDisk) {
		t.Error("a failed load changed the file")
	}
	// Damage anywhere is ErrCorruptKey, never a panic or another key.
	for i := range onDisk {
		d := bytes.Clone(onDisk)
		d[i] ^= 1
		os.WriteFile(path, d, 0o600)
		if _, err := LoadOrCreateSealedIdentity(path, k); !errors.Is(err, ErrCorruptKey) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

// TestClearIdentitySealedOnLoad: a clear key file from before sealing keeps
// its peer ID and is sealed in place.
func TestClearIdentitySealedOnLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.key")
	key, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	clearBytes, _ := os.ReadFile(path)
	if _, err := crypto.UnmarshalPrivateKey(clearBytes); err != nil {
		t.Fatalf("the unsealed file is not a clear key: %v", err)
	}
	k := sealKey(t)
	got, err := LoadOrCreateSealedIdentity(path, k)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := peer.IDFromPrivateKey(key)
	id2, _ := peer.IDFromPrivateKey(got)
	if id1 != id2 {
		t.Fatal("peer ID changed")
	}
	onDisk, _ := os.ReadFile(path)
	if bytes.Equal(onDisk, clearBytes) || !bytes.HasPrefix(onDisk, []byte(sealedKeyMagic)) {
		t.Fatal("not sealed after loading with a key")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	if again, err := LoadOrCreateSealedIdentity(path, k); err != nil || !again.Equals(key) {
		t.Fatalf("reload: %v", err)
	}
}
