package store

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"grove/store/searchcorpus"
)

// Encryption at rest against the clear database, in the same run. Run:
//
//	go test ./store/ -run '^$' -bench BenchmarkEncrypted -count 5
//
// and compare the medians of the plain and encrypted sub-benchmarks.

var encBenchCorpus = sync.OnceValue(func() []Message {
	return corpusMessages(searchcorpus.Generate(searchcorpus.Config{Seed: benchSeed, Docs: 20_000}))
})

var encBenchKey = sync.OnceValue(func() []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
})

var encModes = []struct {
	name string
	key  func() []byte
}{
	{"plain", func() []byte { return nil }},
	{"encrypted", encBenchKey},
}

// BenchmarkEncryptedWrite: one synced AddMessages per op, of one message
// (the live path) or of 1000 (resync pages), on the real disk.
func BenchmarkEncryptedWrite(b *testing.B) {
	msgs := encBenchCorpus()
	for _, size := range []struct {
		name string
		n    int
	}{{"one", 1}, {"batch1000", 1000}} {
		for _, m := range encModes {
			b.Run(size.name+"/"+m.name, func(b *testing.B) {
				db, err := Open(Options{Dir: b.TempDir(), FS: vfs.Default, Key: m.key(), Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				batch := make([]Message, size.n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for j := range batch {
						k := (i*size.n + j)
						batch[j] = msgs[k%len(msgs)]
						// Fresh ids: a repeated one would be a dedup no-op.
						batch[j].ID[0], batch[j].ID[1], batch[j].ID[2] = byte(k>>16), byte(k>>8), byte(k)
						batch[j].ID[3] = byte(k >> 24)
					}
					if _, err := db.AddMessages(batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// encQueryDB is the 20,000-message corpus indexed, flushed and compacted,
// with a 4 MiB block cache so that queries read blocks through the
// (decrypting) filesystem rather than only from the cache.
var encQueryDB = sync.OnceValues(func() (map[string]*DB, error) {
	out := map[string]*DB{}
	for _, m := range encModes {
		dir, err := tempDir()
		if err != nil {
			return nil, err
		}
		db, err := Open(Options{Dir: dir, FS: vfs.Default, Key: m.key(), Logger: quietLogger(), CacheSize: 4 << 20, MemTableSize: 1 << 20})
		if err != nil {
			return nil, err
		}
		msgs := encBenchCorpus()
		for i := 0; i < len(msgs); i += benchBatch {
			if _, err := db.AddMessages(msgs[i:min(i+benchBatch, len(msgs))]); err != nil {
				return nil, err
			}
		}
		if err := db.pdb.Flush(); err != nil {
			return nil, err
		}
		if err := db.pdb.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
			return nil, err
		}
		out[m.name] = db
	}
	return out, nil
})

// BenchmarkEncryptedQuery: one-term and two-term queries (top 20).
func BenchmarkEncryptedQuery(b *testing.B) {
	dbs, err := encQueryDB()
	if err != nil {
		b.Fatal(err)
	}
	c := searchcorpus.Generate(searchcorpus.Config{Seed: benchSeed, Docs: 20_000})
	for _, kind := range []string{"one-term", "two-term-and"} {
		qs := searchcorpus.BenchQueries(c, kind, 1000)
		for _, m := range encModes {
			b.Run(kind+"/"+m.name, func(b *testing.B) {
				db := dbs[m.name]
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := db.Search(b.Context(), Query{Text: qs[i%len(qs)], Limit: 20}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
