package store

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The database holds the device's keys and its whole decrypted history, so
// no other local user may read it: the directory is 0700 and every file
// 0600, whatever the umask and whatever modes an older version or the user
// left behind. Pebble creates directories 0755 and files 0666 minus the
// umask; privateFS narrows each right after creation, and Open repairs what
// already exists.
const (
	privateDirMode  fs.FileMode = 0o700
	privateFileMode fs.FileMode = 0o600
)

// privateFS is the real disk with owner-only modes for everything Pebble
// creates. It wraps vfs.Default only: other filesystems (vfs.NewMem in
// tests) have no modes to set.
type privateFS struct{ vfs.FS }

var _ vfs.FS = privateFS{}

func (p privateFS) private(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	if err := os.Chmod(name, privateFileMode); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: restrict %s: %w", name, err)
	}
	return f, nil
}

func (p privateFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.Create(name, c)
	return p.private(name, f, err)
}

func (p privateFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := p.FS.OpenReadWrite(name, c, opts...)
	return p.private(name, f, err)
}

func (p privateFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.ReuseForWrite(oldname, newname, c)
	return p.private(newname, f, err)
}

func (p privateFS) MkdirAll(dir string, _ os.FileMode) error {
	if err := p.FS.MkdirAll(dir, privateDirMode); err != nil {
		return err
	}
	// MkdirAll leaves an existing directory's mode alone.
	return os.Chmod(dir, privateDirMode)
}

func (p privateFS) Lock(name string) (io.Closer, error) {
	c, err := p.FS.Lock(name)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(name, privateFileMode); err != nil {
		c.Close()
		return nil, fmt.Errorf("store: restrict %s: %w", name, err)
	}
	return c, nil
}

func (p privateFS) Unwrap() vfs.FS { return p.FS }

// restrictUnlocked repairs the modes under dir only while no one else has
// the database open: a running daemon creates each file with Pebble's
// default mode and narrows it a moment later (privateFS), so a second
// process that walked the tree in that moment would report, and chmod, a
// file that was never exposed. When the lock is held, Pebble's own open
// fails next and says so.
func restrictUnlocked(dir string, log *slog.Logger) error {
	if _, err := os.Stat(dir); err != nil {
		return restrictTree(dir, log)
	}
	lock, err := vfs.Default.Lock(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil
	}
	defer lock.Close()
	return restrictTree(dir, log)
}

// restrictTree makes dir 0700 and everything under it owner-only (0700 for
// directories, 0600 for files), logging a warning for each mode it had to
// narrow. A missing dir is not an error: Pebble creates it.
func restrictTree(dir string, log *slog.Logger) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir && os.IsNotExist(err) {
				return filepath.SkipAll
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil // never follow a link out of the database
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := privateFileMode
		if d.IsDir() {
			want = privateDirMode
		}
		if info.Mode().Perm()&^want == 0 {
			return nil
		}
		log.Warn("store: database file readable by other users; restricting it", "path", path, "mode", info.Mode().Perm(), "new_mode", want)
		return os.Chmod(path, want)
	})
	if err != nil {
		return fmt.Errorf("store: restrict permissions of %s: %w", dir, err)
	}
	return nil
}
