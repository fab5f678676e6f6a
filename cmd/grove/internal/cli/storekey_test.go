package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"grove/store"
)

// fakeKeyring is an in-memory OS keyring, or an unavailable one.
type fakeKeyring struct {
	mu          sync.Mutex
	unavailable bool
	entries     map[string]string
}

func (k *fakeKeyring) Get(service, account string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.unavailable {
		return "", fmt.Errorf("%w (test)", errKeyringUnavailable)
	}
	s, ok := k.entries[service+"\x00"+account]
	if !ok {
		return "", errKeyringNoEntry
	}
	return s, nil
}

func (k *fakeKeyring) Set(service, account, secret string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.unavailable {
		return fmt.Errorf("%w (test)", errKeyringUnavailable)
	}
	if k.entries == nil {
		k.entries = map[string]string{}
	}
	k.entries[service+"\x00"+account] = secret
	return nil
}

func (k *fakeKeyring) Delete(service, account string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.unavailable {
		return fmt.Errorf("%w (test)", errKeyringUnavailable)
	}
	delete(k.entries, service+"\x00"+account)
	return nil
}

var fastKDF = store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func keyHarness(t *testing.T, kr *fakeKeyring) *harness {
	h := newHarness(t)
	h.runner.Keyring = kr
	h.runner.testingOnlyKDF = &fastKDF
	return h
}

func writePass(t *testing.T, pass string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(p, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readKeyFile(t *testing.T, home string) *store.KeyFile {
	t.Helper()
	kf, err := store.ReadKeyFile(filepath.Join(home, StoreKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return kf
}

// homeDigest hashes every file under home except the socket.
func homeDigest(t *testing.T, home string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("%s %x", path, sha256.Sum256(b)))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestInitKeyInKeyring(t *testing.T) {
	kr := &fakeKeyring{}
	h := keyHarness(t, kr)
	out := h.ok("init", "--name", "alice")
	if !strings.Contains(out, "database     encrypted, key in the OS keyring\n") {
		t.Errorf("init output:\n%s", out)
	}
	if kf := readKeyFile(t, h.home); kf.Mode != store.KeyInKeyring {
		t.Fatalf("mode %v", kf.Mode)
	}
	secret, err := kr.Get(keyringService, h.home)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(secret)
	if len(key) != store.KeySize || !bytes.Equal(h.configs[0].StoreKey, key) {
		t.Fatalf("init passed key %x, keyring holds %x", h.configs[0].StoreKey, key)
	}
	h.up("--listen", "/ip4/127.0.0.1/tcp/0")
	h.stopUp()
	if !bytes.Equal(h.configs[1].StoreKey, key) {
		t.Fatal("up passed another key")
	}
	// The keyring goes away, or loses the entry: clear errors, no start.
	before := homeDigest(t, h.home)
	kr.unavailable = true
	h.fails("grove: up: the store key of "+h.home+" is in the OS keyring, which cannot be reached: no OS keyring is available (test) (unlock or start your keyring, then retry)\n", 1, "up")
	kr.unavailable = false
	kr.Delete(keyringService, h.home)
	h.fails("grove: up: the store key of "+h.home+" is not in the OS keyring (keyring entries are per home path: was the home moved or the entry deleted?)\n", 1, "up")
	if len(h.configs) != 2 {
		t.Fatal("a daemon was created without its key")
	}
	if homeDigest(t, h.home) != before {
		t.Fatal("a failed up changed the home")
	}
}

func TestInitKeyFileWhenNoKeyring(t *testing.T) {
	h := keyHarness(t, &fakeKeyring{unavailable: true})
	out, errOut, err := h.run("", "init", "--name", "alice")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(h.home, StoreKeyFile)
	if !strings.Contains(out, "database     encrypted, key in "+path+" (file permissions only)\n") {
		t.Errorf("init output:\n%s", out)
	}
	want := "grove: warning: no OS keyring is available (test), so the database key is kept in " + path + ": the data on disk is protected only by file permissions; set a passphrase with: grove passphrase change\n"
	if errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	kf := readKeyFile(t, h.home)
	if kf.Mode != store.KeyInFile || !bytes.Equal(kf.Key, h.configs[0].StoreKey) {
		t.Fatalf("key file %v does not hold the key passed", kf.Mode)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	h.up("--listen", "/ip4/127.0.0.1/tcp/0")
	h.stopUp()
	if !bytes.Equal(h.configs[1].StoreKey, kf.Key) {
		t.Fatal("up passed another key")
	}
	// A second init keeps the key and does not offer a new one.
	h.fails("grove: init: this home already has a store key (kept by key file); to set a passphrase run: grove passphrase change\n", 1, "init", "--name", "alice", "--passphrase")
}

func TestPassphraseKey(t *testing.T) {
	h := keyHarness(t, &fakeKeyring{})
	right, wrong := writePass(t, "correct horse"), writePass(t, "battery staple")
	out := h.ok("init", "--name", "alice", "--passphrase-file", right)
	if !strings.Contains(out, "database     encrypted, key sealed by your passphrase in "+filepath.Join(h.home, StoreKeyFile)+"\n") {
		t.Errorf("init output:\n%s", out)
	}
	key := h.configs[0].StoreKey
	if readKeyFile(t, h.home).Mode != store.KeyByPassphrase {
		t.Fatal("not sealed by the passphrase")
	}
	before := homeDigest(t, h.home)
	h.env["GROVE_PASSPHRASE_FILE"] = wrong
	h.fails("grove: up: wrong passphrase\n", 1, "up")
	delete(h.env, "GROVE_PASSPHRASE_FILE")
	h.fails("grove: up: a passphrase is needed: run this in a terminal, or give --passphrase-file FILE (or set GROVE_PASSPHRASE_FILE)\n", 1, "up")
	if homeDigest(t, h.home) != before || len(h.configs) != 1 {
		t.Fatal("a failed up changed the home or started a daemon")
	}
	h.up("--listen", "/ip4/127.0.0.1/tcp/0", "--passphrase-file", right)
	h.stopUp()
	if !bytes.Equal(h.configs[1].StoreKey, key) {
		t.Fatal("up with the right passphrase passed another key")
	}

	// A damaged key file: its own error, nothing changed.
	path := filepath.Join(h.home, StoreKeyFile)
	good, _ := os.ReadFile(path)
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0x40
	os.WriteFile(path, bad, 0o600)
	before = homeDigest(t, h.home)
	h.fails("grove: up: the store key file "+path+" is damaged; restore it from a backup (without it the database cannot be read)\n", 1, "up", "--passphrase-file", right)
	h.fails("grove: the store key file "+path+" is damaged; restore it from a backup (without it the database cannot be read)\n", 1, "passphrase", "change", "--passphrase-file", right, "--new-passphrase-file", wrong)
	if homeDigest(t, h.home) != before {
		t.Fatal("a damaged key file led to changes")
	}
	os.WriteFile(path, good, 0o600)

	// Changing the passphrase reseals the same key.
	h.fails("grove: wrong passphrase\n", 1, "passphrase", "change", "--passphrase-file", wrong, "--new-passphrase-file", wrong)
	out = h.ok("passphrase", "change", "--passphrase-file", right, "--new-passphrase-file", wrong)
	if out != "passphrase set: the store key is sealed by it in "+path+" (the database was not rewritten)\n" {
		t.Errorf("passphrase change: %q", out)
	}
	h.fails("grove: up: wrong passphrase\n", 1, "up", "--passphrase-file", right)
	h.up("--listen", "/ip4/127.0.0.1/tcp/0", "--passphrase-file", wrong)
	h.stopUp()
	if !bytes.Equal(h.configs[len(h.configs)-1].StoreKey, key) {
		t.Fatal("the key changed with the passphrase")
	}
}

// TestPassphraseChangeFromKeyring moves a keyring-kept key under a
// passphrase and removes the keyring copy.
func TestPassphraseChangeFromKeyring(t *testing.T) {
	kr := &fakeKeyring{}
	h := keyHarness(t, kr)
	h.ok("init", "--name", "alice")
	key := h.configs[0].StoreKey
	pass := writePass(t, "pw")
	h.ok("passphrase", "change", "--new-passphrase-file", pass)
	if _, err := kr.Get(keyringService, h.home); err != errKeyringNoEntry {
		t.Fatalf("keyring entry left: %v", err)
	}
	got, err := readKeyFile(t, h.home).Unseal([]byte("pw"))
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("sealed key: %v", err)
	}
}

// TestUpEncryptsOldHome: a home from before encryption at rest (a clear
// database, no key file) is converted once by up, its plaintext gone.
func TestUpEncryptsOldHome(t *testing.T) {
	h := keyHarness(t, &fakeKeyring{unavailable: true})
	if err := os.MkdirAll(h.home, 0o700); err != nil {
		t.Fatal(err)
	}
	dbDir := filepath.Join(h.home, "db")
	db, err := store.Open(store.Options{Dir: dbDir})
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	if err := db.SetSetting("node.name", []byte(marker)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if !homeHolds(t, h.home, []byte(marker)) {
		t.Fatal("clear database does not show the marker: the scan proves nothing")
	}
	h.up("--listen", "/ip4/127.0.0.1/tcp/0")
	h.stopUp()
	if !strings.Contains(h.log.String(), "the database in "+h.home+" is now encrypted at rest (one-time conversion)") {
		t.Errorf("up log:\n%s", h.log)
	}
	if homeHolds(t, h.home, []byte(marker)) {
		t.Fatal("plaintext left in the home after the conversion")
	}
	key := readKeyFile(t, h.home).Key
	if !bytes.Equal(h.configs[0].StoreKey, key) {
		t.Fatal("up passed another key")
	}
	db, err = store.Open(store.Options{Dir: dbDir, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.Setting("node.name"); err != nil || string(v) != marker {
		t.Fatalf("setting after conversion: %q %v", v, err)
	}
}

// homeHolds reports whether any file under home contains b.
func homeHolds(t *testing.T, home string, b []byte) bool {
	t.Helper()
	found := false
	filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err == nil && bytes.Contains(data, b) {
			t.Logf("found in %s", path)
			found = true
		}
		return nil
	})
	return found
}

// TestMissingOrWrongKeyForEncryptedDatabase: an encrypted database whose
// key file is gone, or whose key file holds another key, is a clear error
// and no new key is made.
func TestMissingOrWrongKeyForEncryptedDatabase(t *testing.T) {
	h := keyHarness(t, &fakeKeyring{unavailable: true})
	if err := os.MkdirAll(h.home, 0o700); err != nil {
		t.Fatal(err)
	}
	key, _ := store.NewStoreKey()
	db, err := store.Open(store.Options{Dir: filepath.Join(h.home, "db"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := homeDigest(t, h.home)
	path := filepath.Join(h.home, StoreKeyFile)
	h.fails("grove: up: the database in "+h.home+" is encrypted but its key file "+path+" is missing; restore it from a backup\n", 1, "up")
	if homeDigest(t, h.home) != before {
		t.Fatal("up changed the home")
	}
	other, _ := store.NewStoreKey()
	if err := store.WriteKeyFile(path, &store.KeyFile{Mode: store.KeyInFile, Key: other}); err != nil {
		t.Fatal(err)
	}
	before = homeDigest(t, h.home)
	h.fails("grove: up: the store key does not open the database in "+h.home+" (was store.key replaced, or the keyring entry?)\n", 1, "up")
	if homeDigest(t, h.home) != before || len(h.configs) != 0 {
		t.Fatal("up changed the home or started a daemon")
	}
}

// TestInitKeyFileFlag: --key-file skips a working keyring; it excludes a
// passphrase.
func TestInitKeyFileFlag(t *testing.T) {
	kr := &fakeKeyring{}
	h := keyHarness(t, kr)
	h.fails("grove: init: --key-file and a passphrase exclude each other\n", 2, "init", "--name", "alice", "--key-file", "--passphrase")
	_, errOut, err := h.run("", "init", "--name", "alice", "--key-file")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(errOut, "grove: warning: the database key is kept in ") {
		t.Errorf("stderr %q", errOut)
	}
	if readKeyFile(t, h.home).Mode != store.KeyInFile || len(kr.entries) != 0 {
		t.Fatal("--key-file did not keep the key in the file only")
	}
}
