package store

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"grove/store/searchcorpus"
)

// Encryption at rest against the clear database. Each iteration runs the
// same operation once on a clear and once on an encrypted database, in
// alternating order, so that the load of a shared machine falls on both
// alike; the benchmark reports the median latency of each and their ratio
// (enc/plain). Run:
//
//	go test ./store/ -run '^$' -bench BenchmarkEncrypted -count 5

const encBenchDocs = 20_000

var encBenchCorpus = sync.OnceValue(func() *searchcorpus.Corpus {
	return searchcorpus.Generate(searchcorpus.Config{Seed: benchSeed, Docs: encBenchDocs})
})

var encBenchKey = sync.OnceValue(func() []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
})

// pairedBench runs op(db, i) on plain and enc alternately and reports the
// median latencies and their ratio.
func pairedBench(b *testing.B, plain, enc *DB, op func(db *DB, i int) error) {
	lat := [2][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)}
	dbs := [2]*DB{plain, enc}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range 2 {
			j := (i + k) % 2 // alternate which goes first
			t0 := time.Now()
			if err := op(dbs[j], i); err != nil {
				b.Fatal(err)
			}
			lat[j] = append(lat[j], time.Since(t0))
		}
	}
	b.StopTimer()
	med := func(l []time.Duration) float64 {
		slices.Sort(l)
		return float64(l[len(l)/2].Nanoseconds()) / 1e3
	}
	p, e := med(lat[0]), med(lat[1])
	b.ReportMetric(p, "plain-µs")
	b.ReportMetric(e, "enc-µs")
	b.ReportMetric(e/p, "enc/plain")
}

func openBenchPair(b *testing.B, opts Options) (plain, enc *DB) {
	var err error
	opts.FS, opts.Logger = vfs.Default, quietLogger()
	opts.Dir = b.TempDir()
	if plain, err = Open(opts); err != nil {
		b.Fatal(err)
	}
	opts.Dir, opts.Key = b.TempDir(), encBenchKey()
	if enc, err = Open(opts); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { plain.Close(); enc.Close() })
	return plain, enc
}

// BenchmarkEncryptedWrite: one synced AddMessages of one message (the live
// path) or of 1000 (resync pages), on the real disk.
func BenchmarkEncryptedWrite(b *testing.B) {
	msgs := corpusMessages(encBenchCorpus())
	for _, size := range []struct {
		name string
		n    int
	}{{"one", 1}, {"batch1000", 1000}} {
		b.Run(size.name, func(b *testing.B) {
			plain, enc := openBenchPair(b, Options{})
			batch := make([]Message, size.n)
			pairedBench(b, plain, enc, func(db *DB, i int) error {
				for j := range batch {
					k := i*size.n + j
					batch[j] = msgs[k%len(msgs)]
					// Fresh ids: a repeated one would be a dedup no-op.
					batch[j].ID[0], batch[j].ID[1], batch[j].ID[2], batch[j].ID[3] = byte(k>>24), byte(k>>16), byte(k>>8), byte(k)
				}
				_, err := db.AddMessages(batch)
				return err
			})
		})
	}
}

// BenchmarkEncryptedQuery: one-term and two-term queries (top 20) on the
// 20,000-message corpus, indexed, flushed and compacted. "cold" has a
// 1 MiB block cache, so that most blocks are read (and decrypted) through
// the filesystem; "warm" has the default 64 MiB cache.
func BenchmarkEncryptedQuery(b *testing.B) {
	c := encBenchCorpus()
	msgs := corpusMessages(c)
	for _, cache := range []struct {
		name       string
		cache, mem int64
	}{{"cold", 1 << 20, 256 << 10}, {"warm", 0, 0}} {
		b.Run(cache.name, func(b *testing.B) {
			plain, enc := openBenchPair(b, Options{CacheSize: cache.cache, MemTableSize: uint64(cache.mem)})
			for _, db := range []*DB{plain, enc} {
				for i := 0; i < len(msgs); i += benchBatch {
					if _, err := db.AddMessages(msgs[i:min(i+benchBatch, len(msgs))]); err != nil {
						b.Fatal(err)
					}
				}
				if err := db.pdb.Flush(); err != nil {
					b.Fatal(err)
				}
				if err := db.pdb.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
					b.Fatal(err)
				}
			}
			for _, kind := range []string{"one-term", "two-term-and"} {
				qs := searchcorpus.BenchQueries(c, kind, 1000)
				b.Run(kind, func(b *testing.B) {
					pairedBench(b, plain, enc, func(db *DB, i int) error {
						_, err := db.Search(b.Context(), Query{Text: qs[i%len(qs)], Limit: 20})
						return err
					})
				})
			}
		})
	}
}
