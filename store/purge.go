package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// The purge discipline (see the package doc): every API that deletes or
// overwrites a secret or plaintext notes the key range it touched, in
// memory for PurgeDeleted and, in the same batch as the deletion, as a
// "purge mark" naming the key space, so that a crash or restart before the
// purge does not forget it. Marks hold only the key space byte: the ranges
// themselves can contain plaintext (a posting key holds a search term) and
// must not be written anywhere.

// purgeMarkKey names the persisted mark of a key space with unpurged
// deletions.
func purgeMarkKey(space byte) []byte { return []byte{spaceMeta, 'p', space} }

// maxPurgeRanges bounds the number of separate compactions one purge runs.
// Beyond it the ranges of each key space are replaced by their hull: one
// compaction that rewrites more data beats hundreds that each rewrite the
// same bottom-level file.
const maxPurgeRanges = 32

// notePurge records that r holds deleted (or overwritten) secrets or
// plaintext: in memory now, and in b as the mark of r's key space. It is
// called before b commits, with purgeGate read-locked until the commit is
// done, so the purge that takes r compacts after the deletion is written and
// never drops the persisted mark of a deletion it has not seen. A batch that
// fails to commit leaves only a harmless extra range.
func (db *DB) notePurge(b *pebble.Batch, r keyRange) {
	db.purgeMu.Lock()
	db.pendingPurge = append(db.pendingPurge, r)
	db.purgeMu.Unlock()
	b.Set(purgeMarkKey(r.start[0]), nil, nil)
}

// loadPurgeMarks queues, at Open, the whole key space of every persisted
// purge mark: the precise ranges were lost with the previous process.
func (db *DB) loadPurgeMarks() error {
	prefix := []byte{spaceMeta, 'p'}
	return db.scan(prefix, func(k, _ []byte) error {
		if len(k) != len(prefix)+1 {
			return corruptf("purge mark key %x", k)
		}
		db.pendingPurge = append(db.pendingPurge, spaceRange(k[len(prefix)]))
		return nil
	})
}

// PurgePending reports whether deletions are waiting for PurgeDeleted.
func (db *DB) PurgePending() bool {
	db.purgeMu.Lock()
	defer db.purgeMu.Unlock()
	return len(db.pendingPurge) > 0
}

// PurgeDeleted makes deleted secrets and plaintext unrecoverable from the
// database directory. When nothing was deleted since the last purge it
// returns at once. Otherwise it flushes the memtable (which also switches to
// a new WAL, so the WAL holding the deleted values becomes obsolete),
// compacts every key range deleted since the last purge down to the bottom
// level (dropping the shadowed values), and waits until Pebble has removed
// the obsolete WALs and sstables. WAL recycling is disabled (see
// noRecycleCleaner), so no old log survives in a reused file. On error the
// ranges stay queued for the next call.
func (db *DB) PurgeDeleted(ctx context.Context) error {
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.purgeGate.Lock() // waits for deletions noted but not yet committed
	db.purgeMu.Lock()
	ranges := db.pendingPurge
	db.pendingPurge = nil
	db.purgeMu.Unlock()
	db.purgeGate.Unlock()
	if len(ranges) == 0 {
		return nil
	}
	requeue := func() {
		db.purgeMu.Lock()
		db.pendingPurge = append(db.pendingPurge, ranges...)
		db.purgeMu.Unlock()
	}
	if err := db.pdb.Flush(); err != nil {
		requeue()
		return fmt.Errorf("store: purge: flush: %w", err)
	}
	for _, r := range mergeRanges(ranges) {
		if err := db.pdb.Compact(ctx, r.start, r.end, true); err != nil {
			requeue()
			return fmt.Errorf("store: purge: compact: %w", err)
		}
	}
	if err := db.clearPurgeMarks(ranges); err != nil {
		return err
	}
	// Obsolete files are deleted by Pebble's cleanup goroutine. This is the
	// only exported way to wait for it; despite its name it only waits for
	// queued deletions to finish.
	db.pdb.TestOnlyWaitForCleaning()
	return ctx.Err()
}

// clearPurgeMarks deletes the persisted marks of the key spaces of ranges,
// except those with deletions noted since the purge took its ranges.
func (db *DB) clearPurgeMarks(ranges []keyRange) error {
	b := db.pdb.NewBatch()
	defer b.Close()
	db.purgeMu.Lock()
	defer db.purgeMu.Unlock()
	busy := map[byte]bool{}
	for _, r := range db.pendingPurge {
		busy[r.start[0]] = true
	}
	done := map[byte]bool{}
	for _, r := range ranges {
		if s := r.start[0]; !busy[s] && !done[s] {
			done[s] = true
			b.Delete(purgeMarkKey(s), nil)
		}
	}
	// Held under purgeMu so that no deletion notes its space between the
	// check and the commit.
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: purge: clear marks: %w", err)
	}
	return nil
}

// mergeRanges sorts and coalesces overlapping or adjacent ranges so each
// region is compacted once; beyond maxPurgeRanges, the ranges of one key
// space become their hull.
func mergeRanges(rs []keyRange) []keyRange {
	if len(rs) == 0 {
		return nil
	}
	sorted := append([]keyRange(nil), rs...)
	slices.SortFunc(sorted, func(a, b keyRange) int { return bytes.Compare(a.start, b.start) })
	out := []keyRange{sorted[0]}
	for _, r := range sorted[1:] {
		last := &out[len(out)-1]
		if string(r.start) <= string(last.end) || (len(sorted) > maxPurgeRanges && r.start[0] == last.start[0]) {
			if string(r.end) > string(last.end) {
				last.end = r.end
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
