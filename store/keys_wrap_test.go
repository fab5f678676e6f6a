package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
)

var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func TestKeyFileRoundTrip(t *testing.T) {
	key := testKey(t)
	sealed, err := SealWithPassphrase(key, []byte("correct horse"), testKDF)
	must(t, err)
	dir := t.TempDir()
	for _, kf := range []*KeyFile{{Mode: KeyInFile, Key: key}, sealed, {Mode: KeyInKeyring}} {
		path := filepath.Join(dir, "store.key")
		must(t, WriteKeyFile(path, kf))
		got, err := ReadKeyFile(path)
		must(t, err)
		if got.Mode != kf.Mode {
			t.Fatalf("mode %v, want %v", got.Mode, kf.Mode)
		}
		switch kf.Mode {
		case KeyInFile:
			if !bytes.Equal(got.Key, key) {
				t.Fatal("key differs")
			}
		case KeyByPassphrase:
			k, err := got.Unseal([]byte("correct horse"))
			if err != nil || !bytes.Equal(k, key) {
				t.Fatalf("Unseal: %v", err)
			}
			if _, err := got.Unseal([]byte("correct horsE")); !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("wrong passphrase: %v", err)
			}
		}
	}
}

// TestKeyFileDamageIsDetected flips every bit and truncates at every
// length: each is ErrCorruptKeyFile (never a wrong-passphrase error or a
// panic), so the user is told the file is damaged, not that they mistyped.
func TestKeyFileDamageIsDetected(t *testing.T) {
	key := testKey(t)
	sealed, err := SealWithPassphrase(key, []byte("pw"), testKDF)
	must(t, err)
	for _, kf := range []*KeyFile{{Mode: KeyInFile, Key: key}, sealed, {Mode: KeyInKeyring}} {
		data, err := kf.MarshalBinary()
		must(t, err)
		for i := range len(data) * 8 {
			d := bytes.Clone(data)
			d[i/8] ^= 1 << (i % 8)
			if _, err := ParseKeyFile(d); !errors.Is(err, ErrCorruptKeyFile) {
				t.Fatalf("mode %v, bit %d flipped: %v", kf.Mode, i, err)
			}
		}
		for n := range len(data) {
			if _, err := ParseKeyFile(data[:n]); !errors.Is(err, ErrCorruptKeyFile) {
				t.Fatalf("mode %v, truncated to %d: %v", kf.Mode, n, err)
			}
		}
	}
}

// TestKeyFileParamsBounded: a file with a valid checksum but absurd
// Argon2id parameters is refused before any work.
func TestKeyFileParamsBounded(t *testing.T) {
	sealed, err := SealWithPassphrase(testKey(t), []byte("pw"), testKDF)
	must(t, err)
	sealed.KDF.MemoryKiB = 1 << 30
	data, err := sealed.MarshalBinary()
	must(t, err)
	if _, err := ParseKeyFile(data); !errors.Is(err, ErrCorruptKeyFile) {
		t.Fatalf("huge memory parameter: %v", err)
	}
}
