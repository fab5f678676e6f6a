package store

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// editCorpus returns n message texts over a fixed vocabulary, and an
// edited version of each (two words changed), deterministically.
func editCorpus(n int) (orig, edited []string, vocab []string) {
	rng := mrand.New(mrand.NewPCG(21, 21))
	for i := range 3000 {
		vocab = append(vocab, fmt.Sprintf("w%dx", i))
	}
	pick := func() string { return vocab[rng.IntN(len(vocab))] }
	for range n {
		ws := make([]string, 12)
		for j := range ws {
			ws[j] = pick()
		}
		orig = append(orig, strings.Join(ws, " "))
		ws[3], ws[8] = pick(), pick()
		edited = append(edited, strings.Join(ws, " "))
	}
	return orig, edited, vocab
}

func benchOpen(b *testing.B) *DB {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	db, err := Open(testOptions(vfs.NewMem(), "db", clock))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

func benchAdd(b *testing.B, db *DB, texts []string) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for start := 0; start < len(texts); start += 1000 {
		tx := db.NewBatch()
		for i := start; i < min(start+1000, len(texts)); i++ {
			var id MessageID
			id[0], id[1], id[2] = byte(i>>16), byte(i>>8), byte(i)
			if err := tx.AddMessage(Message{Group: g1, ID: id, Time: at.Add(time.Duration(i) * time.Second), Sender: []byte("alice"), Text: texts[i]}); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearchAfterEdits compares searches over 10,000 messages that
// were each edited once (every edit rewrites the message's postings) with
// the same searches over a fresh index of the edited texts. Issue 21's
// target: within 1.2x.
func BenchmarkSearchAfterEdits(b *testing.B) {
	const n = 10000
	orig, edited, vocab := editCorpus(n)
	fresh := benchOpen(b)
	benchAdd(b, fresh, edited)
	after := benchOpen(b)
	benchAdd(b, after, orig)
	for i := range n {
		var id MessageID
		id[0], id[1], id[2] = byte(i>>16), byte(i>>8), byte(i)
		if err := after.ReplaceText(g1, []byte("alice"), id, edited[i]); err != nil {
			b.Fatal(err)
		}
	}
	// What the node does after edits: merge the small posting blocks the
	// rewrites left, and purge (compact) the replaced texts and postings.
	if _, err := after.OptimizeIndex(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := after.PurgeDeleted(context.Background()); err != nil {
		b.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	queries := make([]string, 500)
	for i := range queries {
		queries[i] = vocab[rng.IntN(len(vocab))] + " " + vocab[rng.IntN(len(vocab))][:3] + "*"
	}
	run := func(b *testing.B, db *DB) time.Duration {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if _, err := db.Search(context.Background(), Query{Text: queries[i%len(queries)], Limit: 20}); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		return lat[len(lat)/2]
	}
	var p50 [2]time.Duration
	for i, c := range []struct {
		name string
		db   *DB
	}{{"fresh", fresh}, {"after-10k-edits", after}} {
		b.Run(c.name, func(b *testing.B) {
			p50[i] = run(b, c.db)
			b.ReportMetric(float64(p50[i].Microseconds()), "p50-µs")
		})
	}
	if p50[0] > 0 {
		b.Logf("p50 after edits / fresh = %.2f", float64(p50[1])/float64(p50[0]))
	}
}
