package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
)

// DeleteGroup deletes everything the device holds about a group (metadata,
// epoch states and markers, log, outbox, view, search postings, dedup
// markers) in one synced batch. Secrets stay on disk until PurgeDeleted.
func (db *DB) DeleteGroup(group []byte) error {
	if err := checkGroup(group); err != nil {
		return err
	}
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()

	b := db.pdb.NewBatch()
	defer b.Close()
	ix := db.newIndexer(b)
	viewPrefix := newKey(spaceView, 1+len(group)).group(group)
	err = db.scan(viewPrefix, func(k, v []byte) error {
		m, doc, err := decodeMessageKeyed(k, v)
		if err != nil {
			return err
		}
		ix.remove(&m, doc)
		return nil
	})
	if err != nil {
		return err
	}
	var ranges []keyRange
	for _, space := range []byte{spaceGroup, spaceEpochState, spaceEpochMark, spaceLog, spaceLogArrival, spaceOutbox, spaceView, spaceViewByID, spaceDedup} {
		p := newKey(space, 1+len(group)).group(group)
		r := keyRange{start: p, end: prefixEnd(p)}
		if space == spaceGroup {
			// The metadata key is exactly the prefix; group ids that extend
			// this one have a different length byte, so the range is exact.
			r.end = append(append([]byte(nil), p...), 0)
		}
		b.DeleteRange(r.start, r.end, nil)
		ranges = append(ranges, r)
	}
	if err := ix.finish(); err != nil {
		return err
	}
	if err := db.commit(b); err != nil {
		return err
	}
	ix.publish()
	for _, r := range ranges {
		db.notePurge(r.start, r.end)
	}
	return nil
}

// PurgeDeleted makes deleted secrets unrecoverable from the database
// directory. It flushes the memtable (which also switches to a new WAL, so the
// WAL holding the secrets becomes obsolete), compacts every key range deleted
// since the last purge down to the bottom level (dropping the shadowed
// values), and waits until Pebble has removed the obsolete WALs and sstables.
// WAL recycling is disabled (see noRecycleCleaner), so no old log survives in
// a reused file. The node runs it on its deletion schedule, e.g. after
// finalising epochs; it is also safe to call at any time.
func (db *DB) PurgeDeleted(ctx context.Context) error {
	release, err := db.use()
	if err != nil {
		return err
	}
	defer release()
	db.purgeMu.Lock()
	ranges := db.pendingPurge
	db.pendingPurge = nil
	db.purgeMu.Unlock()
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
	// Obsolete files are deleted by Pebble's cleanup goroutine. This is the
	// only exported way to wait for it; despite its name it only waits for
	// queued deletions to finish.
	db.pdb.TestOnlyWaitForCleaning()
	return ctx.Err()
}

// mergeRanges sorts and coalesces overlapping or adjacent ranges so each
// region is compacted once.
func mergeRanges(rs []keyRange) []keyRange {
	if len(rs) == 0 {
		return nil
	}
	sorted := append([]keyRange(nil), rs...)
	slices.SortFunc(sorted, func(a, b keyRange) int { return bytes.Compare(a.start, b.start) })
	out := []keyRange{sorted[0]}
	for _, r := range sorted[1:] {
		last := &out[len(out)-1]
		if string(r.start) <= string(last.end) {
			if string(r.end) > string(last.end) {
				last.end = r.end
			}
			continue
		}
		out = append(out, r)
	}
	return out
}
