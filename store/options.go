package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configures Open. The zero value of every field except Dir is a
// usable default, filled in by EnsureDefaults.
type Options struct {
	// Dir is the database directory. Required.
	Dir string
	// FS is the filesystem Pebble uses. Nil means vfs.Default (the real
	// disk); tests pass vfs.NewMem() or an error-injecting FS. On
	// vfs.Default, Open makes Dir 0700 and every file in it 0600 (warning
	// about each it had to fix) and creates new files owner-only.
	FS vfs.FS
	// Key is the store key (KeySize random bytes) that encrypts every file
	// of the database (see "Encryption at rest" in the package doc). Nil
	// keeps the database in the clear, as tests and benchmarks do. Open
	// refuses an encrypted database without its key (ErrEncrypted, or
	// ErrWrongKey for another key) and a clear one with a key
	// (ErrNotEncrypted: EncryptDir converts it).
	Key []byte
	// Logger receives store and Pebble log lines. Nil means slog.Default().
	Logger *slog.Logger
	// Now returns the current time; it stamps log arrivals and dedup markers.
	// Nil means time.Now.
	Now func() time.Time
	// CacheSize is Pebble's block cache size in bytes. Zero means 64 MiB.
	// Pebble charges the memtables to this cache, so it must be well above
	// twice MemTableSize or nothing is left for blocks.
	CacheSize int64
	// MemTableSize is Pebble's memtable size in bytes. Zero means 16 MiB:
	// bulk indexing (resync, migrations) flushes and compacts much less than
	// with Pebble's 4 MiB default, at the price of up to two such buffers.
	MemTableSize uint64

	// testingOnlyNoCompression stores sstable blocks uncompressed, so that
	// tests scanning the files for planted bytes see every copy (Snappy can
	// turn a repeated string into a back-reference).
	testingOnlyNoCompression bool
}

// EnsureDefaults fills in zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 16 << 20
	}
}

// Validate reports whether the options can be used.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return errors.New("store: options: Dir is required")
	}
	if o.Key != nil && len(o.Key) != KeySize {
		return fmt.Errorf("store: options: Key of %d bytes, want %d", len(o.Key), KeySize)
	}
	if o.CacheSize < 0 {
		return errors.New("store: options: negative CacheSize")
	}
	if o.MemTableSize != 0 && o.MemTableSize < 64<<10 {
		return errors.New("store: options: MemTableSize below 64 KiB")
	}
	if o.CacheSize != 0 && o.MemTableSize != 0 && uint64(o.CacheSize) < 3*o.MemTableSize {
		return errors.New("store: options: CacheSize below 3 x MemTableSize (memtables are charged to the cache)")
	}
	return nil
}
