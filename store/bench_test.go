package store

import (
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"grove/store/searchcorpus"
)

// Benchmarks on the 100,000-message corpus that bench/search also feeds to
// bleve. Run: go test ./store/ -run '^$' -bench . -benchtime 1x (indexing)
// or with the default benchtime (queries).

const (
	benchDocs  = 100_000
	benchBatch = 1000
	benchSeed  = 20260101
)

var benchCorpus = sync.OnceValue(func() *searchcorpus.Corpus {
	return searchcorpus.Generate(searchcorpus.Config{Seed: benchSeed, Docs: benchDocs})
})

func dirSize(tb testing.TB, dir string) int64 {
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

func indexCorpus(tb testing.TB, dir string, msgs []Message) *DB {
	db, err := Open(Options{Dir: dir, FS: vfs.Default, Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < len(msgs); i += benchBatch {
		if _, err := db.AddMessages(msgs[i:min(i+benchBatch, len(msgs))]); err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

// BenchmarkIndex indexes the whole corpus per iteration (view records and
// search index, batches of 1000 synced messages) into a fresh directory.
func BenchmarkIndex(b *testing.B) {
	msgs := corpusMessages(benchCorpus())
	var last string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		db := indexCorpus(b, dir, msgs)
		b.StopTimer()
		if err := db.pdb.Flush(); err != nil {
			b.Fatal(err)
		}
		total := dirSize(b, dir)
		idx, _ := db.pdb.EstimateDiskUsage([]byte{spacePosting}, []byte{spaceIndexStats + 1})
		b.ReportMetric(float64(total), "disk-bytes")
		b.ReportMetric(float64(idx), "index-bytes")
		db.Close()
		last = dir
		b.StartTimer()
	}
	_ = last
	b.ReportMetric(float64(len(msgs))*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

var benchDB = sync.OnceValues(func() (*DB, error) {
	dir, err := tempDir()
	if err != nil {
		return nil, err
	}
	var tb benchTB
	db := indexCorpus(&tb, dir, corpusMessages(benchCorpus()))
	return db, db.pdb.Flush()
})

// BenchmarkQuery measures query latency on the indexed corpus; p50 and p99
// are over the b.N queries of each sub-benchmark.
func BenchmarkQuery(b *testing.B) {
	db, err := benchDB()
	if err != nil {
		b.Fatal(err)
	}
	c := benchCorpus()
	for _, kind := range []string{"one-term", "two-term-and", "prefix"} {
		b.Run(kind, func(b *testing.B) {
			qs := searchcorpus.BenchQueries(c, kind, 1000)
			lat := make([]time.Duration, 0, b.N)
			hits := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				res, err := db.Search(b.Context(), Query{Text: qs[i%len(qs)], Limit: 20})
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				hits += len(res.Hits)
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(hits)/float64(b.N), "hits/query")
		})
	}
}
