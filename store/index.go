package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The full-text index lives in the same Pebble database as the view and is
// written in the same batch as the view record it indexes.
//
// Each indexed message gets a local document number (doc), never reused and
// increasing in indexing order. Postings are stored in blocks: one key per
// term per indexing batch, holding that batch's documents for the term:
//
//	spacePosting | term | 0x00 | first doc (8, big-endian)  ->  posting block
//
// A block lists documents in increasing order, each with its term frequency,
// document length and positions; blocks of a term never overlap. A bulk
// batch of 1000 messages thus writes one key per distinct term instead of
// one per (term, message), which is what makes indexing fast and the index
// small. Removing a document rewrites the block that holds it.
//
// Terms never contain 0x00 (tokens are letters and digits), so all blocks of
// a term are contiguous and a term prefix is a key prefix. A small in-memory
// table maps doc numbers to (time, group, sender, id); it is rebuilt from the
// view at Open and is what filters, recency ranking and result lookup use.
// The index statistics for BM25 (document count, total length) and the next
// doc number are one record, rewritten in every indexing batch.

var indexStatsKey = []byte{spaceIndexStats}

type indexStats struct {
	docs     uint64 // indexed documents
	totalLen uint64 // sum of their token counts
	nextDoc  uint64 // next document number to assign (starts at 1)
}

func encodeIndexStats(s indexStats) []byte {
	e := newEnc(24)
	e.uvarint(s.docs)
	e.uvarint(s.totalLen)
	e.uvarint(s.nextDoc)
	return e.b
}

func decodeIndexStats(val []byte) (indexStats, error) {
	d := newDec(val, "index stats")
	var s indexStats
	s.docs = d.uvarint()
	s.totalLen = d.uvarint()
	s.nextDoc = d.uvarint()
	if d.err == nil && s.nextDoc == 0 {
		d.fail("zero next document number")
	}
	return s, d.finish()
}

func (db *DB) loadIndexStats() (indexStats, error) {
	val, err := db.get(indexStatsKey)
	if err == ErrNotFound {
		return indexStats{nextDoc: 1}, nil
	}
	if err != nil {
		return indexStats{}, err
	}
	s, err := decodeIndexStats(val)
	if err != nil {
		return indexStats{}, fmt.Errorf("store: %w", err)
	}
	return s, nil
}

// docInfo is the in-memory view of one indexed message.
type docInfo struct {
	ts     int64
	group  uint32 // index into docTable.groupIDs; 0 = deleted
	sender uint32 // index into docTable.senderIDs
	id     MessageID
}

// docTable is the in-memory document table, as parallel arrays indexed by
// doc-1 so that the common checks (is the document live, its time) touch
// few cache lines. Writers hold DB.writeMu and mu; readers hold mu.RLock.
type docTable struct {
	mu        sync.RWMutex
	ts        []int64
	group     []uint32 // 0 = no such document (deleted or never stored)
	sender    []uint32
	id        []MessageID
	groups    map[string]uint32
	groupIDs  [][]byte // groupIDs[0] unused
	senders   map[string]uint32
	senderIDs [][]byte
}

func newDocTable() *docTable {
	return &docTable{
		groups:    map[string]uint32{},
		groupIDs:  [][]byte{nil},
		senders:   map[string]uint32{},
		senderIDs: [][]byte{nil},
	}
}

func (t *docTable) intern(m map[string]uint32, ids *[][]byte, v []byte) uint32 {
	if n, ok := m[string(v)]; ok {
		return n
	}
	n := uint32(len(*ids))
	*ids = append(*ids, append([]byte(nil), v...))
	m[string(v)] = n
	return n
}

// set records doc; the caller holds mu.
func (t *docTable) set(doc uint64, m *Message, ts int64) {
	for uint64(len(t.group)) < doc {
		t.ts = append(t.ts, 0)
		t.group = append(t.group, 0)
		t.sender = append(t.sender, 0)
		t.id = append(t.id, MessageID{})
	}
	i := doc - 1
	t.ts[i] = ts
	t.group[i] = t.intern(t.groups, &t.groupIDs, m.Group)
	t.sender[i] = t.intern(t.senders, &t.senderIDs, m.Sender)
	t.id[i] = m.ID
}

// clear forgets doc; the caller holds mu.
func (t *docTable) clear(doc uint64) {
	if doc != 0 && doc <= uint64(len(t.group)) {
		t.group[doc-1] = 0
	}
}

// live reports whether doc is a stored, published document.
func (t *docTable) live(doc uint64) bool {
	return doc != 0 && doc <= uint64(len(t.group)) && t.group[doc-1] != 0
}

func (t *docTable) get(doc uint64) (docInfo, bool) {
	if !t.live(doc) {
		return docInfo{}, false
	}
	i := doc - 1
	return docInfo{ts: t.ts[i], group: t.group[i], sender: t.sender[i], id: t.id[i]}, true
}

func postingPrefix(term string) []byte {
	k := make([]byte, 0, len(term)+10)
	k = append(k, spacePosting)
	k = append(k, term...)
	return append(k, 0)
}

func postingKey(term string, doc uint64) []byte {
	return binary.BigEndian.AppendUint64(postingPrefix(term), doc)
}

// indexer accumulates the index changes of one batch. Nothing is visible to
// readers until publish, which runs after the batch committed.
type indexer struct {
	db      *DB
	b       *pebble.Batch
	stats   indexStats
	added   []pendingDoc
	removed []uint64
	blocks  map[string]*blockBuf // new postings by term
	removes map[string][]uint64  // documents to remove by term
	// scratch, reused across documents
	terms map[string][]uint32
	order []string
}

// blockBuf is a posting block being built.
type blockBuf struct {
	first, last uint64
	n           uint64
	ent, pos    []byte // entries and positions sections
}

type pendingDoc struct {
	doc uint64
	m   *Message
	ts  int64
}

func (db *DB) newIndexer(b *pebble.Batch) *indexer {
	return &indexer{db: db, b: b, stats: db.stats, terms: map[string][]uint32{},
		blocks: map[string]*blockBuf{}, removes: map[string][]uint64{}}
}

// analyse fills ix.terms with term -> positions and returns the doc length.
func (ix *indexer) analyse(text string) int {
	clear(ix.terms)
	ix.order = ix.order[:0]
	n := 0
	tokenize(text, func(term string, pos int) {
		p, ok := ix.terms[term]
		if !ok {
			ix.order = append(ix.order, term)
		}
		ix.terms[term] = append(p, uint32(pos))
		n++
	})
	return n
}

// add indexes m and returns its new document number.
func (ix *indexer) add(m *Message, ts int64) uint64 {
	doc := ix.stats.nextDoc
	ix.stats.nextDoc++
	dl := ix.analyse(m.indexText())
	for _, term := range ix.order {
		bb := ix.blocks[term]
		if bb == nil {
			bb = &blockBuf{first: doc, last: doc}
			ix.blocks[term] = bb
		}
		bb.ent, bb.pos = appendBlockEntry(bb.ent, bb.pos, doc-bb.last, ix.terms[term], dl)
		bb.last = doc
		bb.n++
	}
	ix.stats.docs++
	ix.stats.totalLen += uint64(dl)
	ix.added = append(ix.added, pendingDoc{doc: doc, m: m, ts: ts})
	return doc
}

// remove schedules the postings of m (document doc) for removal; its terms
// are found by re-tokenising its text.
func (ix *indexer) remove(m *Message, doc uint64) {
	dl := ix.analyse(m.indexText())
	for _, term := range ix.order {
		ix.removes[term] = append(ix.removes[term], doc)
	}
	ix.stats.docs--
	ix.stats.totalLen -= uint64(dl)
	ix.removed = append(ix.removed, doc)
}

// finish writes the new blocks, rewrites blocks that lose documents, and the
// statistics, into the batch.
func (ix *indexer) finish() error {
	// Keys go into the batch in key order: the memtable's skiplist inserter
	// reuses its search path between neighbouring keys, so sorted inserts
	// are much cheaper than random ones.
	terms := make([]string, 0, len(ix.blocks))
	for term := range ix.blocks {
		terms = append(terms, term)
	}
	slices.Sort(terms)
	for _, term := range terms {
		bb := ix.blocks[term]
		ix.b.Set(postingKey(term, bb.first), assembleBlock(bb.n, bb.ent, bb.pos), nil)
	}
	for term, docs := range ix.removes {
		if err := ix.removeFromBlocks(term, docs); err != nil {
			return err
		}
	}
	ix.b.Set(indexStatsKey, encodeIndexStats(ix.stats), nil)
	return nil
}

// removeFromBlocks rewrites the blocks of term that hold any of docs.
func (ix *indexer) removeFromBlocks(term string, docs []uint64) error {
	slices.Sort(docs)
	prefix := postingPrefix(term)
	it, err := ix.db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("store: index: %w", err)
	}
	defer it.Close()
	// Group the documents by the block that holds each: the last block
	// starting at or before it.
	type block struct {
		key   []byte
		first uint64
		val   []byte
		docs  []uint64
	}
	var blocks []*block
	for _, doc := range docs {
		if !it.SeekLT(postingKey(term, doc+1)) {
			continue // no posting for this doc: nothing to remove
		}
		first, err := blockFirstDoc(it.Key(), len(prefix))
		if err != nil {
			return err
		}
		if n := len(blocks); n > 0 && blocks[n-1].first == first {
			blocks[n-1].docs = append(blocks[n-1].docs, doc)
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: index: %w", err)
		}
		blocks = append(blocks, &block{key: slices.Clone(it.Key()), first: first, val: slices.Clone(val), docs: []uint64{doc}})
	}
	for _, bl := range blocks {
		var kept []blockEntry
		err := decodeBlock(bl.val, bl.first, func(e blockEntry) error {
			if _, gone := slices.BinarySearch(bl.docs, e.doc); !gone {
				e.pos = slices.Clone(e.pos)
				kept = append(kept, e)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: index: term %q: %w", term, err)
		}
		if len(kept) == 0 {
			ix.b.Delete(bl.key, nil)
		} else {
			ix.b.Set(bl.key, encodeBlock(bl.first, kept), nil)
		}
		// The block key holds the term and the old block the removed
		// documents' positions: both are traces of deleted plaintext.
		ix.db.notePurge(ix.b, keyRange{bl.key, append(slices.Clone(bl.key), 0)})
	}
	return nil
}

// publish makes the batch's changes visible to searches; call it only after
// the batch committed.
func (ix *indexer) publish() {
	t := ix.db.docs
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range ix.added {
		t.set(p.doc, p.m, p.ts)
	}
	for _, doc := range ix.removed {
		t.clear(doc)
	}
	ix.db.stats = ix.stats
}

// blockEntry is one document of a posting block.
type blockEntry struct {
	doc    uint64
	tf, dl uint32
	pos    []uint32 // valid only during the decodeBlock callback
}

// A posting block value is: the entry count, the byte length of the
// positions section, the entries section, then the positions section. An
// entry is the doc delta (from the block's first doc for the first entry,
// from the previous entry after that, so at least 1), the document length
// and the term frequency; the positions section holds each entry's positions
// as ascending deltas, in entry order. Keeping positions apart lets the
// queries that do not need them (all but phrases) skip them without parsing.
// Blocks carry no version byte (they are the bulk of the index); their
// format is fixed by SchemaVersion.
func appendBlockEntry(ent, pos []byte, delta uint64, positions []uint32, dl int) ([]byte, []byte) {
	ent = binary.AppendUvarint(ent, delta)
	ent = binary.AppendUvarint(ent, uint64(dl))
	ent = binary.AppendUvarint(ent, uint64(len(positions)))
	prev := uint32(0)
	for _, p := range positions {
		pos = binary.AppendUvarint(pos, uint64(p-prev))
		prev = p
	}
	return ent, pos
}

func assembleBlock(n uint64, ent, pos []byte) []byte {
	out := make([]byte, 0, len(ent)+len(pos)+8)
	out = binary.AppendUvarint(out, n)
	out = binary.AppendUvarint(out, uint64(len(pos)))
	out = append(out, ent...)
	return append(out, pos...)
}

func encodeBlock(first uint64, entries []blockEntry) []byte {
	var ent, pos []byte
	prev := first
	for _, e := range entries {
		ent, pos = appendBlockEntry(ent, pos, e.doc-prev, e.pos, int(e.dl))
		prev = e.doc
	}
	return assembleBlock(uint64(len(entries)), ent, pos)
}

// maxDocLen bounds the token count of a document (MaxTextLen bytes cannot
// yield more tokens than bytes).
const maxDocLen = MaxTextLen

// maxBlockEntries bounds the documents of one block (one indexing batch).
const maxBlockEntries = 1 << 20

// uvarintPrefix reads the leading count of a block (validated later by
// decodeBlock).
func uvarintPrefix(v []byte) (uint64, int) { return binary.Uvarint(v) }

func blockFirstDoc(key []byte, prefixLen int) (uint64, error) {
	if len(key) != prefixLen+8 {
		return 0, corruptf("posting key %x", key)
	}
	return binary.BigEndian.Uint64(key[prefixLen:]), nil
}

// blockReader reads minimal uvarints from a block section.
type blockReader struct{ b []byte }

func (r *blockReader) uvarint() (uint64, bool) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		return 0, false
	}
	r.b = r.b[n:]
	return v, true
}

// splitBlock checks a block's header and returns the count and the entries
// and positions sections.
func splitBlock(val []byte) (count uint64, ent blockReader, pos []byte, err error) {
	r := blockReader{val}
	count, ok1 := r.uvarint()
	posLen, ok2 := r.uvarint()
	if !ok1 || !ok2 || count == 0 || count > maxBlockEntries || posLen > uint64(len(r.b)) {
		return 0, blockReader{}, nil, corruptf("posting block: bad header")
	}
	split := len(r.b) - int(posLen)
	return count, blockReader{r.b[:split]}, r.b[split:], nil
}

// nextEntry decodes one entry, checking it against the previous doc.
func (r *blockReader) nextEntry(i uint64, doc uint64) (uint64, uint32, uint32, error) {
	delta, ok1 := r.uvarint()
	dl, ok2 := r.uvarint()
	tf, ok3 := r.uvarint()
	if !ok1 || !ok2 || !ok3 || (i > 0 && delta == 0) || delta > math.MaxUint64-doc ||
		tf == 0 || dl == 0 || tf > dl || dl > maxDocLen {
		return 0, 0, 0, corruptf("posting block: bad entry")
	}
	return doc + delta, uint32(tf), uint32(dl), nil
}

// decodeBlock decodes a posting block whose key names first, calling fn for
// each entry in document order, positions included. It rejects anything
// malformed: wrong counts, non-increasing documents, positions outside the
// document, bytes left over in either section.
func decodeBlock(val []byte, first uint64, fn func(blockEntry) error) error {
	count, ent, posSec, err := splitBlock(val)
	if err != nil {
		return err
	}
	pr := blockReader{posSec}
	var pos []uint32
	doc := first
	for i := uint64(0); i < count; i++ {
		var tf, dl uint32
		doc, tf, dl, err = ent.nextEntry(i, doc)
		if err != nil {
			return err
		}
		pos = pos[:0]
		var p uint64
		for j := uint32(0); j < tf; j++ {
			d, ok := pr.uvarint()
			if !ok || (j > 0 && d == 0) {
				return corruptf("posting block: bad position")
			}
			p += d
			if p >= uint64(dl) {
				return corruptf("posting block: position beyond document")
			}
			pos = append(pos, uint32(p))
		}
		if err := fn(blockEntry{doc: doc, tf: tf, dl: dl, pos: pos}); err != nil {
			return err
		}
	}
	if len(ent.b) != 0 || len(pr.b) != 0 {
		return corruptf("posting block: trailing bytes")
	}
	return nil
}

// appendBlockPostings appends a block's entries (without positions) to out;
// the fast path for term and prefix queries. It validates the entries
// section fully and the positions section only by its length, since it does
// not use it.
func appendBlockPostings(out []termPosting, val []byte, first uint64) ([]termPosting, int, error) {
	count, ent, _, err := splitBlock(val)
	if err != nil {
		return out, 0, err
	}
	out = slices.Grow(out, int(count))
	doc := first
	for i := uint64(0); i < count; i++ {
		var tf, dl uint32
		doc, tf, dl, err = ent.nextEntry(i, doc)
		if err != nil {
			return out, 0, err
		}
		out = append(out, termPosting{doc: doc, tf: tf, dl: dl})
	}
	if len(ent.b) != 0 {
		return out, 0, corruptf("posting block: trailing bytes")
	}
	return out, int(count), nil
}

// loadDocTable rebuilds the in-memory document table from the view.
func (db *DB) loadDocTable() error {
	t := newDocTable()
	err := db.scan([]byte{spaceView}, func(k, v []byte) error {
		m, doc, err := decodeMessageKeyed(k, v)
		if err != nil {
			return err
		}
		if doc >= db.stats.nextDoc {
			return corruptf("document number %d beyond next %d", doc, db.stats.nextDoc)
		}
		t.set(doc, &m, m.Time.UnixNano())
		return nil
	})
	if err != nil {
		return err
	}
	db.docs = t
	return nil
}

func decodeMessageKeyed(k, v []byte) (Message, uint64, error) {
	r := keyReader{b: k}
	r.space(spaceView)
	g := r.group()
	ts := r.nanos()
	id := r.fixed(MessageIDLen)
	sender := r.optionalSender()
	if err := r.done(); err != nil {
		return Message{}, 0, fmt.Errorf("store: view: %w", err)
	}
	m, doc, err := decodeMessage(v)
	if err != nil {
		return Message{}, 0, fmt.Errorf("store: view: %w", err)
	}
	if sender != nil && !bytes.Equal(sender, m.Sender) {
		return Message{}, 0, corruptf("view key and record name different senders")
	}
	m.Group = g
	m.Time = time.Unix(0, ts).UTC()
	copy(m.ID[:], id)
	return m, doc, nil
}

// migrateBuildIndex upgrades schema 1 to 2: it rewrites dedup markers in
// their new encoding, rewrites every view record with a document number,
// indexes its text and records its time in its dedup marker (replacing the
// schema-1 id index). It commits in chunks; records already rewritten (an
// interrupted earlier run) are skipped.
func (db *DB) migrateBuildIndex() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if err := db.migrateDedupMarkers(); err != nil {
		return err
	}
	st, err := db.loadIndexStats()
	if err != nil {
		return err
	}
	db.stats = st
	if db.docs == nil {
		db.docs = newDocTable()
	}
	const chunk = 1000
	start := []byte{spaceView}
	end := []byte{spaceView + 1}
	for {
		type old struct {
			key []byte
			m   Message
		}
		var todo []old
		var next []byte
		err := db.scanRange(start, end, func(k, v []byte) error {
			if len(todo) == chunk {
				next = append([]byte(nil), k...)
				return errStopScan
			}
			if len(v) > 0 && v[0] == viewRecordVersion {
				return nil // already migrated
			}
			m, err := decodeMessageV1(v)
			if err != nil {
				return err
			}
			r := keyReader{b: k}
			r.space(spaceView)
			m.Group = r.group()
			ts := r.nanos()
			copy(m.ID[:], r.fixed(MessageIDLen))
			if err := r.done(); err != nil {
				return err
			}
			m.Time = time.Unix(0, ts).UTC()
			todo = append(todo, old{key: append([]byte(nil), k...), m: m})
			return nil
		})
		if err != nil && err != errStopScan {
			return err
		}
		if len(todo) > 0 {
			b := db.pdb.NewBatch()
			ix := db.newIndexer(b)
			for i := range todo {
				m := &todo[i].m
				doc := ix.add(m, m.Time.UnixNano())
				b.Set(todo[i].key, encodeMessage(m, doc), nil)
				rec := dedupRecord{seen: m.Time, inView: true, ts: m.Time.UnixNano()}
				dk := dedupPrefix(m.Group, m.ID) // schema 1 keys had no sender
				if old, err := db.get(dk); err == nil {
					if r, err := decodeDedup(old); err == nil {
						rec.seen = r.seen
					}
				}
				b.Set(dk, encodeDedup(rec), nil)
			}
			if err := ix.finish(); err != nil {
				b.Close()
				return err
			}
			err := db.commit(b)
			b.Close()
			if err != nil {
				return err
			}
			ix.publish()
		}
		if next == nil {
			break
		}
		start = next
	}
	// The schema-1 id index is now redundant.
	b := db.pdb.NewBatch()
	defer b.Close()
	b.DeleteRange([]byte{spaceViewByID}, []byte{spaceViewByID + 1}, nil)
	return db.commit(b)
}

// migrateDedupMarkers rewrites schema-1 dedup markers (time only) in the
// schema-2 encoding.
func (db *DB) migrateDedupMarkers() error {
	b := db.pdb.NewBatch()
	defer func() { b.Close() }()
	n := 0
	err := db.scan([]byte{spaceDedup}, func(k, v []byte) error {
		if len(v) > 0 && v[0] == dedupRecordVersion {
			return nil
		}
		seen, err := decodeDedupV1(v)
		if err != nil {
			return err
		}
		b.Set(k, encodeDedup(dedupRecord{seen: seen}), nil)
		if n++; n%1000 == 0 {
			if err := db.commit(b); err != nil {
				return err
			}
			b.Close()
			b = db.pdb.NewBatch()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.commit(b)
}
