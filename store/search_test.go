package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"grove/store/searchcorpus"
)

func TestTokenize(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"Hello, World! 42x", []string{"hello", "world", "42x"}},
		{"Crème BRÛLÉE à l'École", []string{"creme", "brulee", "a", "l", "ecole"}},
		{"Straße ﬁne", []string{"strasse", "fine"}},
		{"東京都に行く", []string{"東京", "京都", "都に", "に行", "行く"}},
		{"한국어 텍스트", []string{"한국", "국어", "텍스", "스트"}},
		{"日 a", []string{"日", "a"}},
		{"がぎ", []string{"がぎ"}},
		{"ΑΘΉΝΑ", []string{"αθηνα"}},
		{strings.Repeat("x", 100), []string{strings.Repeat("x", maxTokenLen)}},
	}
	for _, c := range cases {
		var got []string
		for _, tk := range tokens(c.in) {
			got = append(got, tk.term)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("tokens(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	cs, err := parseQuery(`Deploy "new Release" depl* e-mail foo-ba*`)
	if err != nil {
		t.Fatal(err)
	}
	want := []clause{
		{clauseTerm, []string{"deploy"}},
		{clausePhrase, []string{"new", "release"}},
		{clausePrefix, []string{"depl"}},
		{clausePhrase, []string{"e", "mail"}},
		{clauseTerm, []string{"foo"}},
		{clausePrefix, []string{"ba"}},
	}
	if len(cs) != len(want) {
		t.Fatalf("clauses = %+v", cs)
	}
	for i := range want {
		if cs[i].kind != want[i].kind || !slices.Equal(cs[i].terms, want[i].terms) {
			t.Errorf("clause %d = %+v, want %+v", i, cs[i], want[i])
		}
	}
	for _, q := range []string{"", "   ", `""`, "*", "!!"} {
		if _, err := parseQuery(q); !errors.Is(err, ErrEmptyQuery) {
			t.Errorf("parseQuery(%q) = %v, want ErrEmptyQuery", q, err)
		}
	}
}

// refDoc is the brute-force model of an indexed message.
type refDoc struct {
	doc    uint64
	m      Message
	toks   []token
	live   bool
	groupS string
}

// refIndex answers queries by scanning every document: the specification
// the Pebble index is checked against.
type refIndex struct{ docs []*refDoc }

func (ri *refIndex) live() []*refDoc {
	var out []*refDoc
	for _, d := range ri.docs {
		if d.live {
			out = append(out, d)
		}
	}
	return out
}

type refHit struct {
	d     *refDoc
	score float64
}

func (ri *refIndex) search(q Query) []refHit {
	clauses, err := parseQuery(q.Text)
	if err != nil {
		return nil
	}
	live := ri.live()
	n := float64(len(live))
	total := 0
	for _, d := range live {
		total += len(d.toks)
	}
	avgdl := float64(total) / n
	termTF := func(d *refDoc, match func(string) bool) uint32 {
		var tf uint32
		for _, tk := range d.toks {
			if match(tk.term) {
				tf++
			}
		}
		return tf
	}
	df := func(match func(string) bool) float64 {
		c := 0
		for _, d := range live {
			if termTF(d, match) > 0 {
				c++
			}
		}
		return float64(c)
	}
	score := func(idf float64, tf uint32, d *refDoc) float64 {
		if q.Order == OrderRecency {
			return 0
		}
		return bm25(idf, tf, uint32(len(d.toks)), avgdl)
	}
	var hits []refHit
	for _, d := range live {
		if q.Group != nil && !bytes.Equal(d.m.Group, q.Group) ||
			q.Sender != nil && !bytes.Equal(d.m.Sender, q.Sender) ||
			!q.From.IsZero() && d.m.Time.Before(q.From) ||
			!q.To.IsZero() && !d.m.Time.Before(q.To) {
			continue
		}
		total := 0.0
		ok := true
		for ci, c := range clauses {
			var s float64
			switch c.kind {
			case clauseTerm:
				eq := func(x string) bool { return x == c.terms[0] }
				tf := termTF(d, eq)
				if tf == 0 {
					ok = false
					break
				}
				s = score(bm25IDF(n, df(eq)), tf, d)
			case clausePrefix:
				pre := func(x string) bool { return strings.HasPrefix(x, c.terms[0]) }
				tf := termTF(d, pre)
				if tf == 0 {
					ok = false
					break
				}
				s = score(bm25IDF(n, df(pre)), tf, d)
			case clausePhrase:
				found := false
				for i := 0; i+len(c.terms) <= len(d.toks) && !found; i++ {
					found = true
					for j, term := range c.terms {
						if d.toks[i+j].term != term {
							found = false
							break
						}
					}
				}
				if !found {
					ok = false
					break
				}
				for _, term := range c.terms {
					eq := func(x string) bool { return x == term }
					s += score(bm25IDF(n, df(eq)), termTF(d, eq), d)
				}
			}
			if !ok {
				break
			}
			if ci == 0 {
				total = s
			} else {
				total += s
			}
		}
		if ok {
			hits = append(hits, refHit{d, total})
		}
	}
	slices.SortFunc(hits, func(a, b refHit) int {
		if q.Order == OrderRelevance {
			if c := cmp.Compare(b.score, a.score); c != 0 {
				return c
			}
		} else if c := cmp.Compare(b.d.m.Time.UnixNano(), a.d.m.Time.UnixNano()); c != 0 {
			return c
		}
		return cmp.Compare(b.d.doc, a.d.doc)
	})
	return hits
}

// searchAll pages through every result with the given page size.
func searchAll(t *testing.T, db *DB, q Query) []Hit {
	t.Helper()
	var all []Hit
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not terminate")
		}
		res, err := db.Search(t.Context(), q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		all = append(all, res.Hits...)
		if res.Next == nil {
			return all
		}
		if len(res.Hits) != q.Limit {
			t.Fatalf("page with a next cursor has %d hits, want %d", len(res.Hits), q.Limit)
		}
		q.Cursor = res.Next
	}
}

func corpusMessages(c *searchcorpus.Corpus) []Message {
	out := make([]Message, len(c.Docs))
	for i, d := range c.Docs {
		out[i] = Message{Group: []byte(d.Group), ID: d.ID, Time: d.Time, Sender: []byte(d.Sender), Text: d.Text, Epoch: uint64(i / 100)}
	}
	return out
}

// TestSearchMatchesBruteForce indexes a seeded corpus and compares random
// queries (terms, AND, prefixes, phrases, filters, both orders, paging)
// against a brute-force scan, then again after deletions and a restart.
func TestSearchMatchesBruteForce(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	corpus := searchcorpus.Generate(searchcorpus.Config{Seed: seed, Docs: 1500, Vocab: 400, Groups: 3, Senders: 5, MinWords: 3, MaxWords: 12})
	msgs := corpusMessages(corpus)
	db, fs, clock := openMem(t)
	ref := &refIndex{}
	for i := 0; i < len(msgs); {
		// Most in batches of 100, the last 300 one by one, as live messages
		// arrive (one small posting block per term each).
		n := 100
		if i >= len(msgs)-300 {
			n = 1
		}
		batch := msgs[i:min(i+n, len(msgs))]
		i += len(batch)
		if _, err := db.AddMessages(batch); err != nil {
			t.Fatal(err)
		}
		for j := range batch {
			ref.docs = append(ref.docs, &refDoc{doc: uint64(len(ref.docs) + 1), m: batch[j], toks: tokens(batch[j].Text), live: true})
		}
	}
	r := rand.New(rand.NewPCG(seed, 1))
	check := func(phase string, nq int) {
		for i := 0; i < nq; i++ {
			q := randomQuery(r, corpus, ref)
			want := ref.search(q)
			q.Limit = 1 + r.IntN(40)
			q.IDsOnly = r.IntN(4) == 0
			got := searchAll(t, db, q)
			if err := compareHits(got, want, q.IDsOnly); err != nil {
				t.Fatalf("%s: query %+v: %v", phase, q, err)
			}
		}
	}
	check("fresh", 150)

	// Delete a third of the messages: their postings must go.
	for _, d := range ref.docs {
		if r.IntN(3) == 0 {
			if err := db.DeleteMessage(d.m.Group, d.m.ID); err != nil {
				t.Fatal(err)
			}
			d.live = false
		}
	}
	check("after deletes", 100)

	// Incremental indexing survives restarts.
	db = reopen(t, db, fs, clock)
	check("after reopen", 100)

	// Merging small posting blocks changes no result.
	keysBefore := countKeys(t, db, spacePosting)
	removed, err := db.OptimizeIndex(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if removed == 0 || countKeys(t, db, spacePosting) != keysBefore-removed {
		t.Fatalf("OptimizeIndex removed %d of %d posting keys", removed, keysBefore)
	}
	check("after optimize", 100)
	for _, d := range ref.docs[len(ref.docs)-150:] {
		if d.live {
			if err := db.DeleteMessage(d.m.Group, d.m.ID); err != nil {
				t.Fatal(err)
			}
			d.live = false
		}
	}
	check("after deleting from merged blocks", 60)
}

func randomQuery(r *rand.Rand, c *searchcorpus.Corpus, ref *refIndex) Query {
	word := func() string { return c.Vocab[r.IntN(min(len(c.Vocab), 150))] }
	var parts []string
	switch r.IntN(6) {
	case 0:
		parts = []string{word()}
	case 1:
		parts = []string{word(), word()}
	case 2:
		parts = []string{runePrefix(tokens(word())[0].term, 1+r.IntN(3)) + "*"}
	case 3:
		// A phrase taken from a real document, so it matches something.
		d := ref.docs[r.IntN(len(ref.docs))]
		ws := strings.Fields(d.m.Text)
		i := r.IntN(len(ws))
		parts = []string{`"` + strings.Join(ws[i:min(len(ws), i+2)], " ") + `"`}
	case 4:
		parts = []string{word(), runePrefix(tokens(word())[0].term, 2) + "*"}
	default:
		parts = []string{strings.ToUpper(word()), word(), word()}
	}
	q := Query{Text: strings.Join(parts, " "), Order: Order(r.IntN(2))}
	if r.IntN(3) == 0 {
		q.Group = []byte(c.Docs[r.IntN(len(c.Docs))].Group)
	}
	if r.IntN(4) == 0 {
		q.Sender = []byte(c.Docs[r.IntN(len(c.Docs))].Sender)
	}
	if r.IntN(3) == 0 {
		a := c.Docs[r.IntN(len(c.Docs))].Time
		b := c.Docs[r.IntN(len(c.Docs))].Time
		if b.Before(a) {
			a, b = b, a
		}
		q.From, q.To = a, b
	}
	return q
}

func compareHits(got []Hit, want []refHit, idsOnly bool) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d hits, brute force has %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !bytes.Equal(g.Message.Group, w.d.m.Group) || g.Message.ID != w.d.m.ID {
			return fmt.Errorf("hit %d is %x/%x, want %x/%x (%q)", i, g.Message.Group, g.Message.ID, w.d.m.Group, w.d.m.ID, w.d.m.Text)
		}
		if math.Abs(g.Score-w.score) > 1e-9 {
			return fmt.Errorf("hit %d score %v, want %v", i, g.Score, w.score)
		}
		wantText := w.d.m.Text
		if idsOnly {
			wantText = ""
		}
		if g.Message.Text != wantText || !bytes.Equal(g.Message.Sender, w.d.m.Sender) || !g.Message.Time.Equal(w.d.m.Time) {
			return fmt.Errorf("hit %d message mismatch: %+v", i, g.Message)
		}
	}
	return nil
}

func TestSearchCursorAndLimits(t *testing.T) {
	db, _, clock := openMem(t)
	for i := byte(1); i <= 5; i++ {
		if _, err := db.AddMessage(msg(g1, i, clock.t.Add(time.Duration(i)*time.Second), "ann", "same words")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := db.Search(t.Context(), Query{Text: "same", Limit: 2, Order: OrderRecency})
	if err != nil || len(res.Hits) != 2 || res.Next == nil || res.Hits[0].Message.ID != mid(5) {
		t.Fatalf("first page = %+v, %v", res, err)
	}
	if _, err := db.Search(t.Context(), Query{Text: "same", Cursor: res.Next}); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("cursor with other order: %v", err)
	}
	if _, err := db.Search(t.Context(), Query{Text: "same", Cursor: []byte("junk")}); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("junk cursor: %v", err)
	}
	if _, err := db.Search(t.Context(), Query{Text: "same", Limit: MaxSearchLimit + 1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("huge limit: %v", err)
	}
	if res, err := db.Search(t.Context(), Query{Text: "same", Group: []byte("nope")}); err != nil || len(res.Hits) != 0 {
		t.Fatalf("unknown group: %+v %v", res, err)
	}
}

func runePrefix(s string, n int) string {
	r := []rune(s)
	return string(r[:min(len(r), n)])
}

// TestLatinFoldMatchesNormalise checks the rune-by-rune fast path against
// normalising the whole text.
func TestLatinFoldMatchesNormalise(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 3000; i++ {
		var sb strings.Builder
		for j := 0; j < 1+r.IntN(12); j++ {
			if r.IntN(3) == 0 {
				sb.WriteRune(rune(r.IntN(0x80)))
			} else {
				sb.WriteRune(rune(0x80 + r.IntN(latinFoldLimit-0x80)))
			}
		}
		s := sb.String()
		var fast, slow []string
		tokenize(s, func(term string, _ int) { fast = append(fast, term) })
		// The slow path: normalise everything, then tokenise (every rune is
		// now a fixed point of the table).
		tokenize(normalise(s)+"\u0250", func(term string, _ int) { slow = append(slow, term) })
		if len(slow) > 0 && strings.HasSuffix(slow[len(slow)-1], "\u0250") {
			last := strings.TrimSuffix(slow[len(slow)-1], "\u0250")
			slow = slow[:len(slow)-1]
			if last != "" {
				slow = append(slow, last)
			}
		}
		if !slices.Equal(fast, slow) {
			t.Fatalf("%q: fast %q, full normalisation %q", s, fast, slow)
		}
	}
}

func countKeys(t *testing.T, db *DB, space byte) int {
	n := 0
	if err := db.scan([]byte{space}, func(k, v []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
