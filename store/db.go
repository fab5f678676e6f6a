package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// SchemaVersion is the version of the key layout and record encodings this
// code writes. Open migrates older databases forward.
//
// History:
//
//	1: identity, groups, epoch states, log, outbox, view, dedup markers.
//	2: full-text index (postings, sender index, index statistics), built
//	   from the view by migration.
const SchemaVersion = 2

// ErrNewerSchema is returned by Open for a database written by a newer
// version of this package; it is left untouched.
var ErrNewerSchema = errors.New("store: database schema is newer than this program")

// ErrNotFound is returned by lookups of records that do not exist.
var ErrNotFound = errors.New("store: not found")

// ErrClosed is returned by operations on a closed DB.
var ErrClosed = errors.New("store: closed")

var schemaKey = []byte{spaceMeta, 'v'}

// DB is one device's database. Its methods are safe for concurrent use.
type DB struct {
	opts Options
	log  *slog.Logger
	pdb  *pebble.DB

	// writeMu serialises writers that read-modify-write shared records (the
	// index statistics, the log sequence) so each batch sees the result of
	// the previous one.
	writeMu sync.Mutex
	stats   indexStats // guarded by writeMu
	logSeq  uint64     // last assigned arrival sequence; guarded by writeMu
	docs    *docTable  // in-memory document table of the search index
	present *presenceFilter

	// purgeGate is read-locked by a deleting write from noting its ranges
	// (notePurge) until its batch has committed, and write-locked by
	// PurgeDeleted while it takes the pending ranges.
	purgeGate sync.RWMutex
	// purgeMu guards pendingPurge: key ranges holding deleted secrets or
	// plaintext that PurgeDeleted must still compact away.
	purgeMu      sync.Mutex
	pendingPurge []keyRange

	postingBufs sync.Pool // *[]termPosting, see scanTermFast

	closeMu sync.RWMutex
	closed  bool
}

type keyRange struct{ start, end []byte }

// Open opens (creating if needed) the database in opts.Dir, migrating an
// older schema forward. It returns ErrNewerSchema for a database from a
// newer version.
func Open(opts Options) (*DB, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	fs := opts.FS
	if fs == vfs.Default {
		if err := restrictUnlocked(opts.Dir, opts.Logger); err != nil {
			return nil, err
		}
		fs = privateFS{fs}
	}
	fs, err := encryptedFS(fs, opts.Dir, opts.Key)
	if err != nil {
		return nil, err
	}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:                 fs,
		Cache:              cache,
		MemTableSize:       opts.MemTableSize,
		Logger:             pebbleLogger{opts.Logger},
		Cleaner:            noRecycleCleaner{},
		FormatMajorVersion: pebble.FormatNewest,
	}
	// Most point lookups miss (dedup checks of new messages and ciphertexts),
	// so every level gets a Bloom filter.
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		if opts.testingOnlyNoCompression {
			popts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
		}
	}
	pdb, err := pebble.Open(opts.Dir, popts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	db := &DB{opts: opts, log: opts.Logger, pdb: pdb}
	if err := db.initSchema(); err != nil {
		pdb.Close()
		return nil, err
	}
	if err := db.loadCounters(); err != nil {
		pdb.Close()
		return nil, err
	}
	// Deletions made before a restart may not have been purged: the first
	// PurgeDeleted after Open compacts every key space with a purge mark,
	// and the epoch states in any case (databases written before purge
	// marks existed have none).
	if err := db.loadPurgeMarks(); err != nil {
		pdb.Close()
		return nil, err
	}
	db.pendingPurge = append(db.pendingPurge, spaceRange(spaceEpochState))
	return db, nil
}

func spaceRange(space byte) keyRange {
	return keyRange{start: []byte{space}, end: []byte{space + 1}}
}

// Close closes the database. Further calls return ErrClosed.
func (db *DB) Close() error {
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	db.closed = true
	if err := db.pdb.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// use guards an operation against a concurrent Close. It returns a release
// function, or ErrClosed.
func (db *DB) use() (func(), error) {
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return nil, ErrClosed
	}
	return db.closeMu.RUnlock, nil
}

// migrations[v] upgrades a database at schema version v to v+1. Each runs
// with the writer lock held and commits its last step together with the new
// version number, so an interrupted migration is simply re-run.
var migrations = map[uint32]func(db *DB) error{
	1: (*DB).migrateBuildIndex,
}

func (db *DB) initSchema() error {
	v, err := db.schemaVersion()
	if errors.Is(err, ErrNotFound) {
		empty, err := db.isEmpty()
		if err != nil {
			return err
		}
		if !empty {
			return corruptf("schema version missing in non-empty database")
		}
		return db.setSchemaVersion(SchemaVersion)
	}
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("%w: database has schema %d, this program knows %d", ErrNewerSchema, v, SchemaVersion)
	}
	if v == 0 {
		return corruptf("schema version 0")
	}
	for ; v < SchemaVersion; v++ {
		m := migrations[v]
		if m == nil {
			return fmt.Errorf("store: no migration from schema %d", v)
		}
		db.log.Info("store: migrating schema", "from", v, "to", v+1)
		if err := m(db); err != nil {
			return fmt.Errorf("store: migrate schema %d to %d: %w", v, v+1, err)
		}
		if err := db.setSchemaVersion(v + 1); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) schemaVersion() (uint32, error) {
	val, err := db.get(schemaKey)
	if err != nil {
		return 0, err
	}
	if len(val) != 4 {
		return 0, corruptf("schema version of %d bytes", len(val))
	}
	return binary.BigEndian.Uint32(val), nil
}

func (db *DB) setSchemaVersion(v uint32) error {
	if err := db.pdb.Set(schemaKey, binary.BigEndian.AppendUint32(nil, v), pebble.Sync); err != nil {
		return fmt.Errorf("store: write schema version: %w", err)
	}
	return nil
}

func (db *DB) isEmpty() (bool, error) {
	it, err := db.pdb.NewIter(nil)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	return empty, nil
}

// get returns a copy of the value at key, or ErrNotFound.
func (db *DB) get(key []byte) ([]byte, error) {
	val, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	out := append([]byte(nil), val...)
	closer.Close()
	return out, nil
}

func (db *DB) has(key []byte) (bool, error) {
	_, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: get: %w", err)
	}
	closer.Close()
	return true, nil
}

func (db *DB) commit(b *pebble.Batch) error {
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// scan calls fn for every key/value with the given prefix, in key order.
// key and value are only valid during the call.
func (db *DB) scan(prefix []byte, fn func(key, value []byte) error) error {
	return db.scanRange(prefix, prefixEnd(prefix), fn)
}

func (db *DB) scanRange(start, end []byte, fn func(key, value []byte) error) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return fmt.Errorf("store: iterator: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("store: read: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: iterator: %w", err)
	}
	return nil
}

// pebbleLogger adapts slog to Pebble's logger interface.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble calls Fatalf for broken invariants it cannot continue from.
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// noRecycleCleaner deletes obsolete Pebble files like pebble.DeleteCleaner,
// but also carries ArchiveCleaner's "needs file contents" marker (at a deeper
// embedding level, so DeleteCleaner's Clean wins). Pebble does not recycle
// WAL files when the cleaner needs file contents; a recycled WAL would keep
// old records, possibly deleted secrets, in its unused tail.
type noRecycleCleaner struct {
	pebble.DeleteCleaner
	needsContents
}

type needsContents struct{ pebble.ArchiveCleaner }

var _ pebble.Cleaner = noRecycleCleaner{}

var _ io.Closer = (*DB)(nil)
