package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func testKey(t testing.TB) []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCryptFileRandomAccess writes a file through cryptFS in uneven
// appends, then reads every range back at every alignment, sequentially,
// and after reopening; the bytes on disk differ from the plaintext.
func TestCryptFileRandomAccess(t *testing.T) {
	for _, disk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", disk), func(t *testing.T) {
			var inner vfs.FS = vfs.NewMem()
			dir := "d"
			if disk {
				inner, dir = vfs.Default, t.TempDir()
			}
			must(t, inner.MkdirAll(dir, 0o700))
			c, err := newCryptFS(inner, testKey(t))
			must(t, err)
			plain := make([]byte, 5000)
			rand.Read(plain)
			name := inner.PathJoin(dir, "f")
			f, err := c.Create(name, vfs.WriteCategoryUnspecified)
			must(t, err)
			for off, step := 0, 1; off < len(plain); off, step = off+step, step*3%97+1 {
				end := min(off+step, len(plain))
				chunk := append([]byte(nil), plain[off:end]...) // Write encrypts in place
				if n, err := f.Write(chunk); err != nil || n != end-off {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			check := func(f vfs.File) {
				t.Helper()
				st, err := f.Stat()
				must(t, err)
				if st.Size() != int64(len(plain)) {
					t.Fatalf("Stat size %d, want %d", st.Size(), len(plain))
				}
				for _, off := range []int{0, 1, 15, 16, 17, 31, 4095, 4096, 4999} {
					for _, n := range []int{1, 15, 16, 33, 1000} {
						buf := make([]byte, n)
						got, err := f.ReadAt(buf, int64(off))
						want := min(n, len(plain)-off)
						if got != want || (got < n && !errors.Is(err, io.EOF)) {
							t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, got, err)
						}
						if !bytes.Equal(buf[:got], plain[off:off+got]) {
							t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
						}
					}
				}
			}
			check(f)
			must(t, f.Close())
			st, err := c.Stat(name)
			must(t, err)
			if st.Size() != int64(len(plain)) {
				t.Fatalf("FS Stat size %d, want %d", st.Size(), len(plain))
			}
			raw, err := inner.Stat(name)
			must(t, err)
			if raw.Size() != int64(len(plain))+cryptHeaderSize {
				t.Fatalf("raw size %d", raw.Size())
			}
			f, err = c.Open(name)
			must(t, err)
			check(f)
			got, err := io.ReadAll(io.LimitReader(f, 1<<20))
			must(t, err)
			if !bytes.Equal(got, plain) {
				t.Fatal("sequential Read differs")
			}
			must(t, f.Close())
			rf, err := inner.Open(name)
			must(t, err)
			onDisk, err := io.ReadAll(rf)
			rf.Close()
			must(t, err)
			if bytes.Contains(onDisk, plain[:32]) {
				t.Fatal("plaintext on disk")
			}
		})
	}
}

// TestCryptCounterCarry checks the keystream offset arithmetic where the
// low 64 bits of the counter wrap: the keystream at offset o must be what
// one CTR stream from the IV produces after o bytes.
func TestCryptCounterCarry(t *testing.T) {
	key := testKey(t)
	iv := bytes.Repeat([]byte{0xff}, 16)
	iv[0] = 0x12
	iv[15] = 0xfe // two blocks before the low half wraps
	b, err := newCryptBody(key, iv)
	must(t, err)
	want := make([]byte, 100)
	b.xor(want, want, 0)
	for off := 0; off < 100; off++ {
		got := make([]byte, 100-off)
		b.xor(got, got, int64(off))
		if !bytes.Equal(got, want[off:]) {
			t.Fatalf("keystream at offset %d differs", off)
		}
	}
}

// markerDB fills a real database with marker plaintext of every kind the
// issue names (epoch state secrets, the signing key setting, group names,
// view messages and their index, outbox) and returns the markers.
func markerDB(t *testing.T, db *DB) [][]byte {
	t.Helper()
	secret := randomSecret(t)
	sigKey := randomSecret(t)
	name := fmt.Sprintf("grpname%x", randomSecret(t)[:8])
	word := fmt.Sprintf("msgword%x", randomSecret(t)[:8])
	outbox := fmt.Sprintf("outbox%x", randomSecret(t)[:8])
	must(t, db.PutGroup(g1, GroupMeta{Name: name, Created: time.Unix(1e9, 0)}))
	must(t, db.PutEpochState(g1, EpochState{EID: eid(1), Epoch: 1, State: secret}))
	must(t, db.SetSetting("node.mls-signature-key", sigKey))
	addMessages(t, db, []Message{{Group: g1, ID: mid(1), Time: time.Unix(1e9, 0), Sender: []byte("s"), Text: "hello " + word + " world"}})
	must(t, db.PutOutbox(OutboxEntry{Group: g1, ID: mid(2), State: OutboxPending, Created: time.Unix(1e9, 0), Plaintext: []byte(outbox)}))
	return [][]byte{secret, sigKey, []byte(name), []byte(word), []byte(outbox)}
}

// scanMarkers returns "file: marker" for each marker found in a file under
// dir (WAL, sstables, MANIFEST, OPTIONS, everything).
func scanMarkers(t *testing.T, dir string, markers [][]byte) []string {
	t.Helper()
	var hits []string
	for i, m := range markers {
		for _, f := range filesContaining(t, dir, m) {
			hits = append(hits, fmt.Sprintf("%s: marker %d", f, i))
		}
	}
	return hits
}

// TestEncryptedDiskHoldsNoPlaintext is the proof test of encryption at
// rest: a real database directory with markers of every record kind, scanned
// while open (the markers in the WAL only, then after a flush in sstables)
// and after Close, holds none of them; the same scan without a key finds
// them, so the scan can fail.
func TestEncryptedDiskHoldsNoPlaintext(t *testing.T) {
	for _, encrypt := range []bool{true, false} {
		t.Run(fmt.Sprintf("encrypt=%v", encrypt), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Dir: filepath.Join(dir, "db"), Logger: quietLogger(), testingOnlyNoCompression: true}
			if encrypt {
				opts.Key = testKey(t)
			}
			db, err := Open(opts)
			must(t, err)
			defer func() { db.Close() }()
			markers := append(markerDB(t, db), opts.Key)
			if !encrypt {
				markers = markers[:len(markers)-1]
			}
			scans := map[string][]string{"open, WAL": scanMarkers(t, dir, markers)}
			must(t, db.pdb.Flush())
			scans["open, flushed"] = scanMarkers(t, dir, markers)
			must(t, db.Close())
			scans["closed"] = scanMarkers(t, dir, markers)
			for when, hits := range scans {
				if encrypt && len(hits) != 0 {
					t.Errorf("%s: plaintext on disk: %v", when, hits)
				}
				if !encrypt && len(hits) < len(markers) {
					t.Errorf("%s: clear database shows only %v: the scan proves nothing", when, hits)
				}
			}
			if encrypt {
				db, err = Open(opts)
				must(t, err)
				st, err := db.EpochStates(g1)
				if err != nil || len(st) != 1 || !bytes.Equal(st[0].State, markers[0]) {
					t.Fatalf("epoch state after reopen: %v, %v", st, err)
				}
				res, err := db.Search(t.Context(), Query{Text: string(markers[3])})
				if err != nil || len(res.Hits) != 1 {
					t.Fatalf("search after reopen: %+v, %v", res, err)
				}
			}
		})
	}
}

// dirDigest hashes the names and contents of every file under dir.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
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
	return fmt.Sprint(lines)
}

// TestOpenWithWrongKeyChangesNothing: a wrong key, no key and a key for a
// clear database each fail with their typed error and leave every file as
// it was.
func TestOpenWithWrongKeyChangesNothing(t *testing.T) {
	dir := t.TempDir()
	enc := filepath.Join(dir, "enc")
	clear := filepath.Join(dir, "clear")
	key := testKey(t)
	for _, o := range []Options{{Dir: enc, Key: key}, {Dir: clear}} {
		o.Logger = quietLogger()
		db, err := Open(o)
		must(t, err)
		markerDB(t, db)
		must(t, db.Close())
	}
	before := dirDigest(t, dir)
	for _, c := range []struct {
		dir  string
		key  []byte
		want error
	}{
		{enc, testKey(t), ErrWrongKey},
		{enc, nil, ErrEncrypted},
		{clear, key, ErrNotEncrypted},
	} {
		db, err := Open(Options{Dir: c.dir, Key: c.key, Logger: quietLogger()})
		if err == nil {
			db.Close()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("Open(%s): %v, want %v", filepath.Base(c.dir), err, c.want)
		}
	}
	if after := dirDigest(t, dir); after != before {
		t.Error("a failed Open changed files")
	}
	// A corrupted header is a wrong key too.
	hdrFile := ""
	names, _ := os.ReadDir(enc)
	for _, n := range names {
		if filepath.Ext(n.Name()) == "" && len(n.Name()) > 8 && n.Name()[:8] == "OPTIONS-" {
			hdrFile = filepath.Join(enc, n.Name())
		}
	}
	if hdrFile == "" {
		t.Fatal("no OPTIONS file")
	}
	b, err := os.ReadFile(hdrFile)
	must(t, err)
	b[cryptIVOff] ^= 1
	must(t, os.WriteFile(hdrFile, b, 0o600))
	if db, err := Open(Options{Dir: enc, Key: key, Logger: quietLogger()}); !errors.Is(err, ErrWrongKey) {
		if err == nil {
			db.Close()
		}
		t.Errorf("Open with an altered header: %v, want ErrWrongKey", err)
	}
}

// TestEncryptDirMigrates converts a clear database, checks the data is
// there and the plaintext is not, and that a second call is a no-op.
func TestEncryptDirMigrates(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "db")
	db, err := Open(Options{Dir: dir, Logger: quietLogger(), testingOnlyNoCompression: true})
	must(t, err)
	markers := markerDB(t, db)
	must(t, db.Close())
	if len(scanMarkers(t, root, markers)) == 0 {
		t.Fatal("clear database shows no marker: the scan proves nothing")
	}
	key := testKey(t)
	done, err := EncryptDir(dir, key, quietLogger())
	if err != nil || !done {
		t.Fatalf("EncryptDir: %v, %v", done, err)
	}
	if hits := scanMarkers(t, root, markers); len(hits) != 0 {
		t.Fatalf("plaintext left after migration: %v", hits)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Fatalf("migration left %v beside the database", ents)
	}
	db, err = Open(Options{Dir: dir, Key: key, Logger: quietLogger()})
	must(t, err)
	st, err := db.EpochStates(g1)
	if err != nil || len(st) != 1 || !bytes.Equal(st[0].State, markers[0]) {
		t.Fatalf("epoch state after migration: %v, %v", st, err)
	}
	must(t, db.Close())
	if done, err := EncryptDir(dir, key, quietLogger()); err != nil || done {
		t.Fatalf("second EncryptDir: %v, %v", done, err)
	}
	if _, err := EncryptDir(dir, testKey(t), quietLogger()); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("EncryptDir with another key: %v", err)
	}
}

// TestEncryptDirRecovers covers crashes inside EncryptDir: between the two
// renames (only the backup exists) and before the backup is removed.
func TestEncryptDirRecovers(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "db")
	db, err := Open(Options{Dir: dir, Logger: quietLogger()})
	must(t, err)
	markers := markerDB(t, db)
	must(t, db.Close())
	key := testKey(t)
	// Crash between the renames, with a half-written copy left over.
	must(t, os.Rename(dir, dir+plainBackupSuffix))
	must(t, os.MkdirAll(dir+encryptingSuffix, 0o700))
	must(t, os.WriteFile(filepath.Join(dir+encryptingSuffix, "000001.sst"), []byte("partial"), 0o600))
	done, err := EncryptDir(dir, key, quietLogger())
	if err != nil || !done {
		t.Fatalf("EncryptDir after a crash between renames: %v, %v", done, err)
	}
	// Crash before the backup was removed.
	must(t, os.MkdirAll(dir+plainBackupSuffix, 0o700))
	must(t, os.WriteFile(filepath.Join(dir+plainBackupSuffix, "OPTIONS-000001"), []byte("[Version]"), 0o600))
	if done, err := EncryptDir(dir, key, quietLogger()); err != nil || done {
		t.Fatalf("EncryptDir after a crash before cleanup: %v, %v", done, err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Fatalf("left %v beside the database", ents)
	}
	db, err = Open(Options{Dir: dir, Key: key, Logger: quietLogger()})
	must(t, err)
	defer db.Close()
	if v, err := db.Setting("node.mls-signature-key"); err != nil || !bytes.Equal(v, markers[1]) {
		t.Fatalf("setting after recovery: %v", err)
	}
}
