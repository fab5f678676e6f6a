package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The full-text index lives in the same Pebble database as the view and is
// written in the same batch as the view record it indexes.
//
// Each indexed message gets a local document number (doc), never reused.
// Postings are keyed by term then doc:
//
//	spacePosting | term | 0x00 | doc (8, big-endian)  ->  tf, doc length, positions
//
// Terms never contain 0x00 (tokens are letters and digits), so all postings of
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

// docTable is the in-memory document table. Writers hold DB.writeMu and mu;
// readers hold mu.RLock.
type docTable struct {
	mu        sync.RWMutex
	docs      []docInfo // docs[doc-1]
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
	for uint64(len(t.docs)) < doc {
		t.docs = append(t.docs, docInfo{})
	}
	t.docs[doc-1] = docInfo{
		ts:     ts,
		group:  t.intern(t.groups, &t.groupIDs, m.Group),
		sender: t.intern(t.senders, &t.senderIDs, m.Sender),
		id:     m.ID,
	}
}

func (t *docTable) get(doc uint64) (docInfo, bool) {
	if doc == 0 || doc > uint64(len(t.docs)) {
		return docInfo{}, false
	}
	d := t.docs[doc-1]
	return d, d.group != 0
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
	// scratch, reused across documents
	terms map[string][]uint32
	order []string
}

type pendingDoc struct {
	doc uint64
	m   *Message
	ts  int64
}

func (db *DB) newIndexer(b *pebble.Batch) *indexer {
	return &indexer{db: db, b: b, stats: db.stats, terms: map[string][]uint32{}}
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
	dl := ix.analyse(m.Text)
	var val []byte
	for _, term := range ix.order {
		val = encodePosting(val[:0], ix.terms[term], dl)
		ix.b.Set(postingKey(term, doc), val, nil)
	}
	ix.stats.docs++
	ix.stats.totalLen += uint64(dl)
	ix.added = append(ix.added, pendingDoc{doc: doc, m: m, ts: ts})
	return doc
}

// remove deletes the postings of m (document doc), found by re-tokenising
// its text.
func (ix *indexer) remove(m *Message, doc uint64) {
	dl := ix.analyse(m.Text)
	for _, term := range ix.order {
		ix.b.Delete(postingKey(term, doc), nil)
	}
	ix.stats.docs--
	ix.stats.totalLen -= uint64(dl)
	ix.removed = append(ix.removed, doc)
}

func (ix *indexer) finish() error {
	ix.b.Set(indexStatsKey, encodeIndexStats(ix.stats), nil)
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
		if doc <= uint64(len(t.docs)) {
			t.docs[doc-1] = docInfo{}
		}
	}
	ix.db.stats = ix.stats
}

// encodePosting appends a posting value: term frequency, document length,
// then the positions as ascending deltas. Postings carry no version byte (they
// are the bulk of the index); their format is fixed by SchemaVersion.
func encodePosting(dst []byte, positions []uint32, dl int) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(positions)))
	dst = binary.AppendUvarint(dst, uint64(dl))
	prev := uint32(0)
	for _, p := range positions {
		dst = binary.AppendUvarint(dst, uint64(p-prev))
		prev = p
	}
	return dst
}

// maxDocLen bounds the token count of a document (MaxTextLen bytes cannot
// yield more tokens than bytes).
const maxDocLen = MaxTextLen

// decodePosting decodes a posting; positions are appended to pos only if pos
// is non-nil (phrase queries need them, others skip the work).
func decodePosting(val []byte, pos *[]uint32) (tf, dl uint32, err error) {
	readUvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(val)
		if n <= 0 || (n > 1 && val[n-1] == 0) {
			return 0, false
		}
		val = val[n:]
		return v, true
	}
	t, ok1 := readUvarint()
	l, ok2 := readUvarint()
	if !ok1 || !ok2 || t == 0 || l == 0 || t > l || l > maxDocLen {
		return 0, 0, corruptf("posting: bad header")
	}
	var p uint64
	for i := uint64(0); i < t; i++ {
		d, ok := readUvarint()
		if !ok || (i > 0 && d == 0) {
			return 0, 0, corruptf("posting: bad position")
		}
		p += d
		if p >= l {
			return 0, 0, corruptf("posting: position beyond document")
		}
		if pos != nil {
			*pos = append(*pos, uint32(p))
		}
	}
	if len(val) != 0 {
		return 0, 0, corruptf("posting: %d trailing bytes", len(val))
	}
	return uint32(t), uint32(l), nil
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
	if err := r.done(); err != nil {
		return Message{}, 0, fmt.Errorf("store: view: %w", err)
	}
	m, doc, err := decodeMessage(v)
	if err != nil {
		return Message{}, 0, fmt.Errorf("store: view: %w", err)
	}
	m.Group = g
	m.Time = time.Unix(0, ts).UTC()
	copy(m.ID[:], id)
	return m, doc, nil
}

// migrateBuildIndex upgrades schema 1 to 2: it rewrites every view record
// with a document number and indexes its text. It commits in chunks; records
// already rewritten (an interrupted earlier run) are skipped.
func (db *DB) migrateBuildIndex() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
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
			return nil
		}
		start = next
	}
}
