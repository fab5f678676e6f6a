package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Order is the ranking of search results.
type Order uint8

const (
	// OrderRelevance ranks by BM25 (k1 = 1.2, b = 0.75); ties go to the
	// message stored last.
	OrderRelevance Order = 0
	// OrderRecency ranks newest first (by message time).
	OrderRecency Order = 1
)

// Query is a full-text search over the local view.
//
// Text syntax: words are ANDed; "quoted words" must appear consecutively (a
// phrase); a word ending in * matches every term with that prefix (depl*);
// a word that tokenises into several terms (e-mail, CJK text) is a phrase.
// Matching is case- and diacritic-insensitive.
type Query struct {
	Text string
	// Group restricts results to one group; nil means all groups.
	Group []byte
	// Sender restricts results to one sender; nil means all senders.
	Sender []byte
	// From (inclusive) and To (exclusive) restrict the message time; zero
	// means unbounded.
	From, To time.Time
	Order    Order
	// Limit is the page size: zero means 20, at most MaxSearchLimit.
	Limit int
	// Cursor continues a previous search: pass Result.Next.
	Cursor []byte
	// IDsOnly leaves Text, Epoch and Flags of the hits empty, saving one
	// view lookup per hit (Group, ID, Time and Sender are always filled);
	// fetch the messages shown with Message.
	IDsOnly bool
}

// MaxSearchLimit bounds Query.Limit.
const MaxSearchLimit = 1000

// maxPrefixTerms bounds how many terms a prefix may expand to.
const maxPrefixTerms = 10000

// maxClauses bounds the number of clauses of a query.
const maxClauses = 32

// Hit is one search result.
type Hit struct {
	Message Message
	// Score is the BM25 score (OrderRelevance) or 0 (OrderRecency).
	Score float64
}

// Result is one page of search results.
type Result struct {
	Hits []Hit
	// Next is the cursor for the following page, nil if there is none.
	Next []byte
}

var (
	// ErrEmptyQuery: the query text has no searchable term.
	ErrEmptyQuery = errors.New("store: search: query has no terms")
	// ErrQueryTooBroad: a prefix matches too many terms, or too many clauses.
	ErrQueryTooBroad = errors.New("store: search: query too broad")
	// ErrBadCursor: the cursor is malformed or belongs to another ordering.
	ErrBadCursor = errors.New("store: search: bad cursor")
)

type clauseKind uint8

const (
	clauseTerm clauseKind = iota
	clausePrefix
	clausePhrase
)

type clause struct {
	kind  clauseKind
	terms []string // one for term and prefix; phrase terms in order
}

// parseQuery turns query text into clauses (see Query).
func parseQuery(text string) ([]clause, error) {
	var out []clause
	addWords := func(s string, phrase bool) {
		if phrase {
			ts := tokens(s)
			if len(ts) == 0 {
				return
			}
			c := clause{kind: clausePhrase}
			for _, t := range ts {
				c.terms = append(c.terms, t.term)
			}
			if len(c.terms) == 1 {
				c.kind = clauseTerm
			}
			out = append(out, c)
			return
		}
		for _, w := range strings.Fields(s) {
			prefix := strings.HasSuffix(w, "*")
			ts := tokens(strings.TrimRight(w, "*"))
			if len(ts) == 0 {
				continue
			}
			if prefix {
				// "foo-ba*": foo and ba* must both match.
				for _, t := range ts[:len(ts)-1] {
					out = append(out, clause{kind: clauseTerm, terms: []string{t.term}})
				}
				out = append(out, clause{kind: clausePrefix, terms: []string{ts[len(ts)-1].term}})
				continue
			}
			c := clause{kind: clausePhrase}
			for _, t := range ts {
				c.terms = append(c.terms, t.term)
			}
			if len(c.terms) == 1 {
				c.kind = clauseTerm
			}
			out = append(out, c)
		}
	}
	for {
		i := strings.IndexByte(text, '"')
		if i < 0 {
			addWords(text, false)
			break
		}
		addWords(text[:i], false)
		rest := text[i+1:]
		j := strings.IndexByte(rest, '"')
		if j < 0 {
			addWords(rest, true)
			break
		}
		addWords(rest[:j], true)
		text = rest[j+1:]
	}
	if len(out) == 0 {
		return nil, ErrEmptyQuery
	}
	if len(out) > maxClauses {
		return nil, fmt.Errorf("%w: %d clauses, at most %d", ErrQueryTooBroad, len(out), maxClauses)
	}
	return out, nil
}

// BM25 parameters.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

func bm25IDF(n, df float64) float64 { return math.Log(1 + (n-df+0.5)/(df+0.5)) }

func bm25(idf float64, tf, dl uint32, avgdl float64) float64 {
	f := float64(tf)
	return idf * f * (bm25K1 + 1) / (f + bm25K1*(1-bm25B+bm25B*float64(dl)/avgdl))
}

// termPosting is one document of a term's posting list, without positions
// (and without pointers, so large lists cost the garbage collector nothing).
type termPosting struct {
	doc    uint64
	tf, dl uint32
}

// posting is one document of a term's posting list with its positions.
type posting struct {
	doc    uint64
	tf, dl uint32
	pos    []uint32
}

// scored is a matching document with its clause score so far.
type scored struct {
	doc   uint64
	score float64
}

// searcher runs one query against a snapshot of the docs table.
type searcher struct {
	ctx   context.Context
	db    *DB
	q     *Query
	table *docTable
	group uint32
	send  uint32
	from  int64
	to    int64
	n     float64
	avgdl float64
}

// Search runs a query; see Query for the syntax and filters.
func (db *DB) Search(ctx context.Context, q Query) (Result, error) {
	if q.Limit == 0 {
		q.Limit = 20
	}
	if q.Limit < 0 || q.Limit > MaxSearchLimit {
		return Result{}, invalidf("search limit %d, want 1..%d", q.Limit, MaxSearchLimit)
	}
	if q.Order != OrderRelevance && q.Order != OrderRecency {
		return Result{}, invalidf("search order %d", q.Order)
	}
	var after *cursor
	if q.Cursor != nil {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return Result{}, err
		}
		if c.order != q.Order {
			return Result{}, fmt.Errorf("%w: cursor for another ordering", ErrBadCursor)
		}
		after = &c
	}
	clauses, err := parseQuery(q.Text)
	if err != nil {
		return Result{}, err
	}
	release, err := db.use()
	if err != nil {
		return Result{}, err
	}
	defer release()

	t := db.docs
	t.mu.RLock()
	s := &searcher{ctx: ctx, db: db, q: &q, table: t, from: math.MinInt64, to: math.MaxInt64}
	stats := db.stats
	s.n = float64(stats.docs)
	if stats.docs > 0 {
		s.avgdl = float64(stats.totalLen) / float64(stats.docs)
	}
	empty := false
	if q.Group != nil {
		s.group = t.groups[string(q.Group)]
		empty = s.group == 0
	}
	if q.Sender != nil {
		s.send = t.senders[string(q.Sender)]
		empty = empty || s.send == 0
	}
	t.mu.RUnlock()
	if !q.From.IsZero() {
		s.from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		s.to = q.To.UnixNano()
	}
	if empty || s.from >= s.to {
		return Result{}, nil
	}

	// Read postings from one snapshot so concurrent writes cannot tear a
	// clause.
	snap := db.pdb.NewSnapshot()
	defer snap.Close()
	var acc []scored
	for i, c := range clauses {
		part, err := s.evalClause(snap, c)
		if err != nil {
			return Result{}, err
		}
		if i == 0 {
			acc = part
		} else {
			acc = intersect(acc, part)
		}
		if len(acc) == 0 {
			return Result{}, nil
		}
	}
	return s.page(acc, after)
}

// intersect keeps the documents present in both sorted lists, adding scores.
func intersect(a, b []scored) []scored {
	out := a[:0]
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].doc < b[j].doc:
			i++
		case a[i].doc > b[j].doc:
			j++
		default:
			out = append(out, scored{a[i].doc, a[i].score + b[j].score})
			i++
			j++
		}
	}
	return out
}

// visible applies the filters to a document; the caller holds table.mu.
// Postings are read without filtering (a lookup per posting would cost more
// than the scan); only the intersected candidates are checked here.
func (s *searcher) visible(doc uint64) (docInfo, bool) {
	d, ok := s.table.get(doc)
	if !ok {
		return d, false // deleted, or committed but not yet published
	}
	if s.group != 0 && d.group != s.group || s.send != 0 && d.sender != s.send {
		return d, false
	}
	return d, d.ts >= s.from && d.ts < s.to
}

// scanTermPositions reads a term's posting list with positions (for
// phrases); it returns the postings in doc order and the document frequency.
func (s *searcher) scanTermPositions(r pebble.Reader, term string) ([]posting, int, error) {
	prefix := postingPrefix(term)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, 0, fmt.Errorf("store: search: %w", err)
	}
	defer it.Close()
	var out []posting
	df := 0
	for ok := it.First(); ok; ok = it.Next() {
		if err := s.ctx.Err(); err != nil {
			return nil, 0, err
		}
		first, err := blockFirstDoc(it.Key(), len(prefix))
		if err != nil {
			return nil, 0, err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, 0, fmt.Errorf("store: search: %w", err)
		}
		err = decodeBlock(v, first, func(e blockEntry) error {
			df++
			out = append(out, posting{doc: e.doc, tf: e.tf, dl: e.dl, pos: slices.Clone(e.pos)})
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("store: search: term %q: %w", term, err)
		}
	}
	if err := it.Error(); err != nil {
		return nil, 0, fmt.Errorf("store: search: %w", err)
	}
	return out, df, nil
}

// scanTermFast is scanTermPositions without positions, appending to buf (reused
// between queries through DB.postingBufs: the lists of frequent terms are
// large and allocating them dominated query time).
func (s *searcher) scanTermFast(r pebble.Reader, term string, buf []termPosting) ([]termPosting, error) {
	prefix := postingPrefix(term)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return buf, fmt.Errorf("store: search: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := s.ctx.Err(); err != nil {
			return buf, err
		}
		first, err := blockFirstDoc(it.Key(), len(prefix))
		if err != nil {
			return buf, err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return buf, fmt.Errorf("store: search: %w", err)
		}
		if buf, _, err = appendBlockPostings(buf, v, first); err != nil {
			return buf, fmt.Errorf("store: search: term %q: %w", term, err)
		}
	}
	if err := it.Error(); err != nil {
		return buf, fmt.Errorf("store: search: %w", err)
	}
	return buf, nil
}

func (db *DB) getPostingBuf() *[]termPosting {
	if b, ok := db.postingBufs.Get().(*[]termPosting); ok {
		return b
	}
	return new([]termPosting)
}

func (db *DB) putPostingBuf(b *[]termPosting) {
	if cap(*b) <= 1<<20 { // do not pin huge buffers
		*b = (*b)[:0]
		db.postingBufs.Put(b)
	}
}

func (s *searcher) termScore(tf, dl uint32, idf float64) float64 {
	if s.q.Order == OrderRecency {
		return 0
	}
	return bm25(idf, tf, dl, s.avgdl)
}

func (s *searcher) evalClause(r pebble.Reader, c clause) ([]scored, error) {
	switch c.kind {
	case clauseTerm:
		buf := s.db.getPostingBuf()
		defer s.db.putPostingBuf(buf)
		ps, err := s.scanTermFast(r, c.terms[0], (*buf)[:0])
		*buf = ps
		if err != nil {
			return nil, err
		}
		idf := bm25IDF(s.n, float64(len(ps)))
		out := make([]scored, len(ps))
		for i, p := range ps {
			out[i] = scored{p.doc, s.termScore(p.tf, p.dl, idf)}
		}
		return out, nil
	case clausePrefix:
		return s.evalPrefix(r, c.terms[0])
	default:
		return s.evalPhrase(r, c.terms)
	}
}

// evalPrefix treats all terms with the prefix as one pseudo-term: its tf in
// a document is the sum of their tfs and its df the number of documents
// containing any of them.
func (s *searcher) evalPrefix(r pebble.Reader, prefix string) ([]scored, error) {
	lo := append([]byte{spacePosting}, prefix...)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	defer it.Close()
	// Each term's postings are sorted by doc; the lists are merged below.
	var lists [][]termPosting
	var cur []termPosting
	var lastTerm []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 1+8+1 || k[len(k)-9] != 0 || bytes.IndexByte(k[1:len(k)-9], 0) >= 0 {
			return nil, corruptf("posting key %x", k)
		}
		term := k[1 : len(k)-9]
		if !bytes.Equal(term, lastTerm) {
			if len(lists) >= maxPrefixTerms {
				return nil, fmt.Errorf("%w: %s* matches more than %d terms", ErrQueryTooBroad, prefix, maxPrefixTerms)
			}
			if err := s.ctx.Err(); err != nil {
				return nil, err
			}
			if cur != nil {
				lists = append(lists, cur)
			}
			cur = nil
			lastTerm = append(lastTerm[:0], term...)
		}
		first := binary.BigEndian.Uint64(k[len(k)-8:])
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("store: search: %w", err)
		}
		cur, _, err = appendBlockPostings(cur, v, first)
		if err != nil {
			return nil, fmt.Errorf("store: search: %w", err)
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	if cur != nil {
		lists = append(lists, cur)
	}
	// Merge pairwise, summing the tfs of a document present in several
	// terms' lists: O(n log k) for k terms.
	for len(lists) > 1 {
		next := lists[:0:0]
		for i := 0; i+1 < len(lists); i += 2 {
			next = append(next, mergePostings(lists[i], lists[i+1]))
		}
		if len(lists)%2 == 1 {
			next = append(next, lists[len(lists)-1])
		}
		lists = next
	}
	if len(lists) == 0 {
		return nil, nil
	}
	merged := lists[0]
	idf := bm25IDF(s.n, float64(len(merged)))
	out := make([]scored, len(merged))
	for i, p := range merged {
		out[i] = scored{p.doc, s.termScore(p.tf, p.dl, idf)}
	}
	return out, nil
}

func mergePostings(a, b []termPosting) []termPosting {
	out := make([]termPosting, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].doc < b[j].doc:
			out = append(out, a[i])
			i++
		case a[i].doc > b[j].doc:
			out = append(out, b[j])
			j++
		default:
			p := a[i]
			p.tf += b[j].tf
			out = append(out, p)
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// evalPhrase matches documents where the terms occur at consecutive
// positions; the score is the sum of the terms' own BM25 scores.
func (s *searcher) evalPhrase(r pebble.Reader, terms []string) ([]scored, error) {
	lists := make([][]posting, len(terms))
	idfs := make([]float64, len(terms))
	for i, t := range terms {
		ps, df, err := s.scanTermPositions(r, t)
		if err != nil {
			return nil, err
		}
		lists[i], idfs[i] = ps, bm25IDF(s.n, float64(df))
	}
	var out []scored
	idx := make([]int, len(terms))
	for _, p0 := range lists[0] {
		row := make([]posting, len(terms))
		row[0] = p0
		found := true
		for i := 1; i < len(terms); i++ {
			l := lists[i]
			for idx[i] < len(l) && l[idx[i]].doc < p0.doc {
				idx[i]++
			}
			if idx[i] == len(l) || l[idx[i]].doc != p0.doc {
				found = false
				break
			}
			row[i] = l[idx[i]]
		}
		if !found || !phraseAt(row) {
			continue
		}
		score := 0.0
		for i, p := range row {
			score += s.termScore(p.tf, p.dl, idfs[i])
		}
		out = append(out, scored{p0.doc, score})
	}
	return out, nil
}

// phraseAt reports whether some position p has term i at p+i for every i.
func phraseAt(row []posting) bool {
	for _, start := range row[0].pos {
		ok := true
		for i := 1; i < len(row); i++ {
			if _, hit := slices.BinarySearch(row[i].pos, start+uint32(i)); !hit {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ranked is a candidate in ranking order.
type ranked struct {
	score float64
	ts    int64
	doc   uint64
}

// before reports whether a ranks ahead of b. Relevance: higher score, then
// higher document number (stored later); recency: newer, then higher
// document number. Relevance ties are not broken by time so that ranking
// needs no per-candidate time lookup.
func (a ranked) before(b ranked, order Order) bool {
	if order == OrderRelevance {
		if a.score != b.score {
			return a.score > b.score
		}
		return a.doc > b.doc
	}
	if a.ts != b.ts {
		return a.ts > b.ts
	}
	return a.doc > b.doc
}

// topK keeps the k best candidates, best first.
type topK struct {
	k     int
	order Order
	best  []ranked
}

func (t *topK) offer(r ranked) {
	n := len(t.best)
	if n == t.k && !r.before(t.best[n-1], t.order) {
		return
	}
	i, _ := slices.BinarySearchFunc(t.best, r, func(x, r ranked) int {
		if x.before(r, t.order) {
			return -1
		}
		return 1
	})
	if n < t.k {
		t.best = append(t.best, ranked{})
	}
	copy(t.best[i+1:], t.best[i:])
	t.best[i] = r
}

func (s *searcher) page(acc []scored, after *cursor) (Result, error) {
	filtered := s.group != 0 || s.send != 0 || s.from != math.MinInt64 || s.to != math.MaxInt64
	top := topK{k: s.q.Limit + 1, order: s.q.Order}
	s.table.mu.RLock()
	for _, a := range acc {
		r := ranked{score: a.score, doc: a.doc}
		if filtered {
			d, ok := s.visible(a.doc)
			if !ok {
				continue
			}
			r.ts = d.ts
		} else {
			if !s.table.live(a.doc) {
				continue
			}
			if s.q.Order == OrderRecency {
				r.ts = s.table.ts[a.doc-1]
			}
		}
		if after != nil && !after.ranked.before(r, s.q.Order) {
			continue
		}
		top.offer(r)
	}
	s.table.mu.RUnlock()
	rs := top.best
	more := len(rs) > s.q.Limit
	if more {
		rs = rs[:s.q.Limit]
	}
	hits := make([]Hit, 0, len(rs))
	s.table.mu.RLock()
	for _, r := range rs {
		d, ok := s.table.get(r.doc)
		if !ok {
			continue // deleted meanwhile
		}
		m := Message{
			Group:  slices.Clone(s.table.groupIDs[d.group]),
			ID:     d.id,
			Time:   time.Unix(0, d.ts).UTC(),
			Sender: slices.Clone(s.table.senderIDs[d.sender]),
		}
		hits = append(hits, Hit{Message: m, Score: r.score})
	}
	s.table.mu.RUnlock()
	if !s.q.IDsOnly {
		var err error
		if hits, err = s.db.fillMessages(hits); err != nil {
			return Result{}, err
		}
	}
	res := Result{Hits: hits}
	if more && len(rs) > 0 {
		res.Next = encodeCursor(cursor{order: s.q.Order, ranked: rs[len(rs)-1]})
	}
	return res, nil
}

// fillMessages reads the view records of hits (in key order through one
// iterator, cheaper than a Get each) and drops hits deleted meanwhile. A
// record is looked up under its key naming the sender, then under the key
// of a record written before keys named it.
func (db *DB) fillMessages(hits []Hit) ([]Hit, error) {
	type lookup struct {
		key, legacy []byte
		i           int
	}
	ls := make([]lookup, len(hits))
	for i, h := range hits {
		m := &h.Message
		ls[i] = lookup{viewKey(m.Group, m.Time.UnixNano(), m.ID, m.Sender), legacyViewKey(m.Group, m.Time.UnixNano(), m.ID), i}
	}
	slices.SortFunc(ls, func(a, b lookup) int { return bytes.Compare(a.key, b.key) })
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{spaceView}, UpperBound: []byte{spaceView + 1}})
	if err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	defer it.Close()
	found := make([]bool, len(hits))
	for _, l := range ls {
		if !it.SeekGE(l.key) || !bytes.Equal(it.Key(), l.key) {
			if !it.SeekGE(l.legacy) || !bytes.Equal(it.Key(), l.legacy) {
				continue
			}
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("store: search: %w", err)
		}
		m, _, err := decodeMessage(v)
		if err != nil {
			return nil, fmt.Errorf("store: search: %w", err)
		}
		h := &hits[l.i].Message
		if !bytes.Equal(m.Sender, h.Sender) {
			continue // a legacy record of another sender
		}
		h.Sender, h.Text, h.Epoch, h.Flags = m.Sender, m.Text, m.Epoch, m.Flags
		found[l.i] = true
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("store: search: %w", err)
	}
	out := hits[:0]
	for i, h := range hits {
		if found[i] {
			out = append(out, h)
		}
	}
	return out, nil
}

// cursor is the position after which the next page starts.
type cursor struct {
	order Order
	ranked
}

const cursorVersion = 1

func encodeCursor(c cursor) []byte {
	b := []byte{cursorVersion, byte(c.order)}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.score))
	b = binary.BigEndian.AppendUint64(b, uint64(c.ts))
	return binary.BigEndian.AppendUint64(b, c.doc)
}

func decodeCursor(b []byte) (cursor, error) {
	if len(b) != 2+24 || b[0] != cursorVersion || (b[1] != byte(OrderRelevance) && b[1] != byte(OrderRecency)) {
		return cursor{}, ErrBadCursor
	}
	c := cursor{order: Order(b[1])}
	c.score = math.Float64frombits(binary.BigEndian.Uint64(b[2:]))
	if math.IsNaN(c.score) || math.IsInf(c.score, 0) {
		return cursor{}, ErrBadCursor
	}
	c.ts = int64(binary.BigEndian.Uint64(b[10:]))
	c.doc = binary.BigEndian.Uint64(b[18:])
	return c, nil
}
