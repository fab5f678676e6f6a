package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// Posting blocks written one message at a time hold one document each; a
// term then has as many keys as messages, and a query pays one iterator step
// per key. OptimizeIndex merges runs of adjacent small blocks of a term into
// blocks of up to optimizeTarget documents, like a segment merge.
const (
	// optimizeSmall: blocks with fewer documents are merged.
	optimizeSmall = 64
	// optimizeTarget bounds the documents of a merged block.
	optimizeTarget = 4096
	// optimizeChunk bounds the keys rewritten per batch, so writers are not
	// held up for long.
	optimizeChunk = 20000
)

// OptimizeIndex merges small posting blocks (see above). Searches see the
// same results before and after. The node runs it now and then, e.g. with
// PurgeDeleted; it returns how many keys it removed.
func (db *DB) OptimizeIndex(ctx context.Context) (int, error) {
	release, err := db.use()
	if err != nil {
		return 0, err
	}
	defer release()
	removed := 0
	start := []byte{spacePosting}
	for start != nil {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		n, next, err := db.optimizeChunk(start)
		removed += n
		if err != nil {
			return removed, err
		}
		start = next
	}
	return removed, nil
}

// optimizeChunk merges blocks from start on until about optimizeChunk keys
// were visited; it returns where to continue (nil when done).
func (db *DB) optimizeChunk(start []byte) (int, []byte, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: []byte{spacePosting + 1}})
	if err != nil {
		return 0, nil, fmt.Errorf("store: optimize: %w", err)
	}
	defer it.Close()
	b := db.pdb.NewBatch()
	defer b.Close()

	type block struct {
		key   []byte
		first uint64
		val   []byte
		count int
	}
	var run []block
	var runTerm []byte
	runDocs := 0
	removed := 0
	flushRun := func() error {
		if len(run) > 1 {
			var entries []blockEntry
			for _, bl := range run {
				err := decodeBlock(bl.val, bl.first, func(e blockEntry) error {
					e.pos = slices.Clone(e.pos)
					entries = append(entries, e)
					return nil
				})
				if err != nil {
					return fmt.Errorf("store: optimize: %w", err)
				}
			}
			b.Set(run[0].key, encodeBlock(run[0].first, entries), nil)
			for _, bl := range run[1:] {
				b.Delete(bl.key, nil)
			}
			removed += len(run) - 1
		}
		run, runDocs = run[:0], 0
		return nil
	}
	visited := 0
	var next []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 1+1+8 || k[len(k)-9] != 0 {
			return 0, nil, corruptf("posting key %x", k)
		}
		term := k[1 : len(k)-9]
		if !bytes.Equal(term, runTerm) {
			if err := flushRun(); err != nil {
				return 0, nil, err
			}
			// Stop only between terms, so a run never spans two chunks.
			if visited >= optimizeChunk {
				next = slices.Clone(k)
				break
			}
			runTerm = append(runTerm[:0], term...)
		}
		visited++
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, nil, fmt.Errorf("store: optimize: %w", err)
		}
		count, n := uvarintPrefix(v)
		if n <= 0 || count == 0 || count > maxBlockEntries {
			return 0, nil, corruptf("posting block: bad count")
		}
		if int(count) >= optimizeSmall || runDocs+int(count) > optimizeTarget {
			if err := flushRun(); err != nil {
				return 0, nil, err
			}
			if int(count) >= optimizeSmall {
				continue // big blocks stay as they are
			}
		}
		first, err := blockFirstDoc(k, len(k)-8)
		if err != nil {
			return 0, nil, err
		}
		run = append(run, block{key: slices.Clone(k), first: first, val: slices.Clone(v), count: int(count)})
		runDocs += int(count)
	}
	if err := it.Error(); err != nil {
		return 0, nil, fmt.Errorf("store: optimize: %w", err)
	}
	if err := flushRun(); err != nil {
		return 0, nil, err
	}
	if removed > 0 {
		if err := db.commit(b); err != nil {
			return 0, nil, err
		}
	}
	return removed, next, nil
}
