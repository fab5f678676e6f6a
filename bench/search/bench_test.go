package search

import (
	"context"
	"encoding/hex"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/char/asciifolding"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"

	"grove/store"
	"grove/store/searchcorpus"
)

const (
	docs      = 100_000
	batchSize = 1000
	seed      = 20260101
)

var corpus = sync.OnceValue(func() *searchcorpus.Corpus {
	return searchcorpus.Generate(searchcorpus.Config{Seed: seed, Docs: docs})
})

var kinds = []string{"one-term", "two-term-and", "prefix"}

// idsOnly makes the store's search return ids like bleve without stored
// fields does; the default benchmark also fetches the 20 messages.
var modes = []struct {
	name    string
	idsOnly bool
}{{"messages", false}, {"ids", true}}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// report turns the per-query latencies into p50/p99 metrics.
func report(b *testing.B, lat []time.Duration, hits int) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(hits)/float64(len(lat)), "hits/query")
}

// ---- grove store ----

func messages(c *searchcorpus.Corpus) []store.Message {
	out := make([]store.Message, len(c.Docs))
	for i, d := range c.Docs {
		out[i] = store.Message{Group: []byte(d.Group), ID: d.ID, Time: d.Time, Sender: []byte(d.Sender), Text: d.Text}
	}
	return out
}

func groveIndex(tb testing.TB, dir string) *store.DB {
	db, err := store.Open(store.Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	msgs := messages(corpus())
	for i := 0; i < len(msgs); i += batchSize {
		if _, err := db.AddMessages(msgs[i:min(i+batchSize, len(msgs))]); err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

// BenchmarkGroveIndex stores and indexes the corpus (view records, dedup
// markers and postings, synced batches of 1000) per iteration.
func BenchmarkGroveIndex(b *testing.B) {
	corpus()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		db := groveIndex(b, dir)
		b.StopTimer()
		// PurgeDeleted flushes the memtable, so the size counts sstables,
		// not a WAL waiting to be replayed.
		if err := db.PurgeDeleted(context.Background()); err != nil {
			b.Fatal(err)
		}
		u, err := db.DiskUsage()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(u.Index), "index-bytes")
		db.Close()
		b.ReportMetric(float64(dirSize(dir)), "disk-bytes")
		b.StartTimer()
	}
	b.ReportMetric(float64(docs)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

var groveDB = sync.OnceValue(func() *store.DB {
	dir, err := os.MkdirTemp("", "grove-bench-")
	if err != nil {
		panic(err)
	}
	return groveIndex(panicTB{}, dir)
})

func BenchmarkGroveQuery(b *testing.B) {
	db := groveDB()
	for _, mode := range modes {
		for _, kind := range kinds {
			b.Run(mode.name+"/"+kind, func(b *testing.B) {
				qs := searchcorpus.BenchQueries(corpus(), kind, 1000)
				lat := make([]time.Duration, 0, b.N)
				hits := 0
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					res, err := db.Search(context.Background(), store.Query{Text: qs[i%len(qs)], Limit: 20, IDsOnly: mode.idsOnly})
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
					hits += len(res.Hits)
				}
				report(b, lat, hits)
			})
		}
	}
}

// ---- bleve ----

// leanMapping indexes only what the comparison needs: the text with ASCII
// folding (the store folds diacritics too), a Unicode tokenizer and
// lower-casing (no stored fields, term vectors, doc
// values or _all field), and group and sender as keywords.
func leanMapping() mapping.IndexMapping {
	im := bleve.NewIndexMapping()
	err := im.AddCustomAnalyzer("lean", map[string]any{
		"type":          custom.Name,
		"char_filters":  []any{asciifolding.Name},
		"tokenizer":     unicode.Name,
		"token_filters": []any{lowercase.Name},
	})
	if err != nil {
		panic(err)
	}
	text := bleve.NewTextFieldMapping()
	text.Analyzer = "lean"
	text.Store = false
	text.IncludeTermVectors = false
	text.IncludeInAll = false
	text.DocValues = false
	kw := bleve.NewKeywordFieldMapping()
	kw.Store = false
	kw.IncludeInAll = false
	kw.DocValues = false
	dm := bleve.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt("text", text)
	dm.AddFieldMappingsAt("group", kw)
	dm.AddFieldMappingsAt("sender", kw)
	im.DefaultMapping = dm
	im.DefaultAnalyzer = "lean"
	im.StoreDynamic = false
	im.IndexDynamic = false
	im.DocValuesDynamic = false
	return im
}

type bleveDoc struct {
	Text   string `json:"text"`
	Group  string `json:"group"`
	Sender string `json:"sender"`
}

func bleveIndex(tb testing.TB, dir string) bleve.Index {
	idx, err := bleve.New(filepath.Join(dir, "idx"), leanMapping())
	if err != nil {
		tb.Fatal(err)
	}
	c := corpus()
	for i := 0; i < len(c.Docs); i += batchSize {
		batch := idx.NewBatch()
		for _, d := range c.Docs[i:min(i+batchSize, len(c.Docs))] {
			if err := batch.Index(hex.EncodeToString(d.ID[:]), bleveDoc{Text: d.Text, Group: d.Group, Sender: d.Sender}); err != nil {
				tb.Fatal(err)
			}
		}
		if err := idx.Batch(batch); err != nil {
			tb.Fatal(err)
		}
	}
	return idx
}

func BenchmarkBleveIndex(b *testing.B) {
	corpus()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		idx := bleveIndex(b, dir)
		b.StopTimer()
		idx.Close()
		b.ReportMetric(float64(dirSize(dir)), "disk-bytes")
		b.StartTimer()
	}
	b.ReportMetric(float64(docs)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

var bleveIdx = sync.OnceValue(func() bleve.Index {
	dir, err := os.MkdirTemp("", "bleve-bench-")
	if err != nil {
		panic(err)
	}
	return bleveIndex(panicTB{}, dir)
})

// bleveQuery translates a BenchQueries string: words ANDed (each analysed
// like the text), a trailing * a prefix query.
func bleveQuery(s string) query.Query {
	var qs []query.Query
	for _, w := range strings.Fields(s) {
		if p, ok := strings.CutSuffix(w, "*"); ok {
			q := bleve.NewPrefixQuery(strings.ToLower(p))
			q.SetField("text")
			qs = append(qs, q)
			continue
		}
		q := bleve.NewMatchQuery(w)
		q.SetField("text")
		q.SetOperator(query.MatchQueryOperatorAnd)
		qs = append(qs, q)
	}
	if len(qs) == 1 {
		return qs[0]
	}
	return bleve.NewConjunctionQuery(qs...)
}

func BenchmarkBleveQuery(b *testing.B) {
	idx := bleveIdx()
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			qs := searchcorpus.BenchQueries(corpus(), kind, 1000)
			lat := make([]time.Duration, 0, b.N)
			hits := 0
			for i := 0; i < b.N; i++ {
				req := bleve.NewSearchRequestOptions(bleveQuery(qs[i%len(qs)]), 20, 0, false)
				t0 := time.Now()
				res, err := idx.Search(req)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				hits += len(res.Hits)
			}
			report(b, lat, hits)
		})
	}
}

// TestSameHitCounts checks the two engines agree on how many documents
// match the benchmark queries, so the latency comparison is like for like.
// Queries with non-ASCII words are skipped: the store splits CJK into
// bigrams, bleve's unicode tokenizer does not.
func TestSameHitCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("indexes 100,000 messages twice")
	}
	db, idx := groveDB(), bleveIdx()
	for _, kind := range kinds {
		for _, q := range searchcorpus.BenchQueries(corpus(), kind, 30) {
			if !isASCII(q) {
				continue
			}
			g, err := db.Search(context.Background(), store.Query{Text: q, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			req := bleve.NewSearchRequestOptions(bleveQuery(q), 1000, 0, false)
			res, err := idx.Search(req)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(len(g.Hits)) != min(res.Total, 1000) {
				t.Errorf("%s %q: store %d hits, bleve %d", kind, q, len(g.Hits), res.Total)
			}
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

type panicTB struct{ testing.TB }

func (panicTB) Fatal(args ...any) { panic(args) }
