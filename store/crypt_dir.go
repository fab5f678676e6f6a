package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// encryptedFS returns the filesystem Open gives Pebble for dir: fs itself
// without a key, else fs wrapped in cryptFS. It checks first that dir is in
// the state the key implies, so that a missing or wrong key is one clear
// error before Pebble reads anything.
func encryptedFS(inner vfs.FS, dir string, key []byte) (vfs.FS, error) {
	hdr, err := sampleHeader(inner, dir)
	if err != nil {
		return nil, err
	}
	encrypted := hdr != nil && isCryptHeader(hdr)
	if key == nil {
		if encrypted {
			return nil, fmt.Errorf("store: open %s: %w", dir, ErrEncrypted)
		}
		return inner, nil
	}
	if hdr != nil && !encrypted {
		return nil, fmt.Errorf("store: open %s: %w", dir, ErrNotEncrypted)
	}
	c, err := newCryptFS(inner, key)
	if err != nil {
		return nil, err
	}
	if hdr != nil {
		if _, err := c.openHeader(hdr); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", dir, err)
		}
	}
	return c, nil
}

// sampleHeader returns the first bytes of one database file of dir (an
// OPTIONS file by preference: in the clear it is text, so it cannot be
// mistaken for a header), or nil when dir has no non-empty file.
func sampleHeader(inner vfs.FS, dir string) ([]byte, error) {
	names, err := inner.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", dir, err)
	}
	slices.SortStableFunc(names, func(a, b string) int {
		ao, bo := strings.HasPrefix(a, "OPTIONS-"), strings.HasPrefix(b, "OPTIONS-")
		switch {
		case ao && !bo:
			return -1
		case bo && !ao:
			return 1
		}
		return 0
	})
	for _, name := range names {
		if name == "LOCK" {
			continue
		}
		path := inner.PathJoin(dir, name)
		st, err := inner.Stat(path)
		if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
			continue
		}
		f, err := inner.Open(path)
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		hdr := make([]byte, cryptHeaderSize)
		n, err := f.ReadAt(hdr, 0)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("store: read %s: %w", path, err)
		}
		return hdr[:n], nil
	}
	return nil, nil
}

// IsEncrypted reports whether the database in dir (on the real disk) is
// encrypted; a missing or empty dir is not.
func IsEncrypted(dir string) (bool, error) {
	hdr, err := sampleHeader(vfs.Default, dir)
	if err != nil {
		return false, err
	}
	return hdr != nil && isCryptHeader(hdr), nil
}

// Suffixes of the directories EncryptDir works in, beside dir.
const (
	encryptingSuffix  = ".encrypting"
	plainBackupSuffix = ".plaintext-backup"
)

// EncryptDir converts the clear database in dir (on the real disk; it must
// not be open) into one encrypted with key, and reports whether it did: a
// missing or already encrypted dir is left alone. It copies every file
// through the encrypting filesystem into dir.encrypting, opens the copy with
// key to check it, then swaps the directories (dir becomes
// dir.plaintext-backup, dir.encrypting becomes dir) and removes the backup.
// A crash at any point leaves either the clear database in dir or the
// encrypted one; the next call finishes or restarts the work. The clear
// files are unlinked, not overwritten (see the package doc).
func EncryptDir(dir string, key []byte, log *slog.Logger) (bool, error) {
	if log == nil {
		log = slog.Default()
	}
	tmp, backup := dir+encryptingSuffix, dir+plainBackupSuffix
	if err := recoverEncryptDir(dir, backup, key); err != nil {
		return false, err
	}
	if err := os.RemoveAll(tmp); err != nil {
		return false, fmt.Errorf("store: encrypt %s: %w", dir, err)
	}
	inner := privateFS{vfs.Default}
	hdr, err := sampleHeader(inner, dir)
	if err != nil {
		return false, err
	}
	if hdr == nil {
		return false, nil // no database yet: Open creates it encrypted
	}
	if isCryptHeader(hdr) {
		if _, err := encryptedFS(inner, dir, key); err != nil {
			return false, err
		}
		return false, nil
	}
	log.Info("store: encrypting the database", "dir", dir)
	if err := copyEncrypted(dir, tmp, key); err != nil {
		os.RemoveAll(tmp)
		return false, err
	}
	check, err := Open(Options{Dir: tmp, Key: key, Logger: log})
	if err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("store: encrypt %s: the encrypted copy does not open: %w", dir, err)
	}
	if err := check.Close(); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("store: encrypt %s: %w", dir, err)
	}
	if err := os.Rename(dir, backup); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("store: encrypt %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Put the clear database back; it is intact.
		if rerr := os.Rename(backup, dir); rerr != nil {
			return false, fmt.Errorf("store: encrypt %s: %w (and restoring it: %v)", dir, err, rerr)
		}
		return false, fmt.Errorf("store: encrypt %s: %w", dir, err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return true, err
	}
	if err := os.RemoveAll(backup); err != nil {
		return true, fmt.Errorf("store: remove the clear copy %s: %w", backup, err)
	}
	return true, nil
}

// recoverEncryptDir finishes or undoes an EncryptDir that stopped between
// its two renames or before removing the backup.
func recoverEncryptDir(dir, backup string, key []byte) error {
	if _, err := os.Stat(backup); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		// Stopped between the renames: the clear database is whole.
		if err := os.Rename(backup, dir); err != nil {
			return fmt.Errorf("store: restore %s: %w", backup, err)
		}
		return nil
	}
	hdr, err := sampleHeader(vfs.Default, dir)
	if err != nil {
		return err
	}
	if hdr == nil || !isCryptHeader(hdr) {
		return fmt.Errorf("store: both %s and %s hold a clear database; remove one", dir, backup)
	}
	if _, err := encryptedFS(vfs.Default, dir, key); err != nil {
		return err
	}
	if err := os.RemoveAll(backup); err != nil {
		return fmt.Errorf("store: remove the clear copy %s: %w", backup, err)
	}
	return nil
}

// copyEncrypted copies every file of the clear database src into dst
// through cryptFS, holding src's Pebble lock so that no one writes it.
func copyEncrypted(src, dst string, key []byte) error {
	inner := privateFS{vfs.Default}
	lock, err := vfs.Default.Lock(filepath.Join(src, "LOCK"))
	if err != nil {
		return fmt.Errorf("store: encrypt %s: is the database in use? %w", src, err)
	}
	defer lock.Close()
	c, err := newCryptFS(inner, key)
	if err != nil {
		return err
	}
	if err := inner.MkdirAll(dst, privateDirMode); err != nil {
		return fmt.Errorf("store: encrypt: %w", err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("store: encrypt: %w", err)
	}
	buf := make([]byte, 1<<20)
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		if !e.Type().IsRegular() {
			return fmt.Errorf("store: encrypt %s: unexpected %s in the database directory", src, e.Name())
		}
		if err := copyFileEncrypted(c, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), buf); err != nil {
			return fmt.Errorf("store: encrypt %s: %w", e.Name(), err)
		}
	}
	return syncDir(dst)
}

func copyFileEncrypted(c *cryptFS, src, dst string, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := c.Create(dst, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			// Write encrypts buf in place; it is refilled by the next Read.
			if _, err := out.Write(buf[:n]); err != nil {
				out.Close()
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", dir, err)
	}
	return nil
}
