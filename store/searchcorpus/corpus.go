// Package searchcorpus generates a deterministic corpus of chat messages for
// testing and benchmarking full-text search: a Zipf-distributed vocabulary of
// made-up words (a few with diacritics, a few in CJK script), several groups
// and senders, and increasing timestamps. The same seed always gives the same
// corpus, so the store's benchmarks and the bleve comparison in bench/search
// index identical text.
//
// It is test support only; nothing in the product depends on it.
package searchcorpus

import (
	"math/rand/v2"
	"strings"
	"time"
)

// Doc is one generated chat message.
type Doc struct {
	Group  string
	Sender string
	ID     [16]byte
	Time   time.Time
	Text   string
}

// Config shapes a corpus. Zero fields take the defaults noted.
type Config struct {
	Seed     uint64
	Docs     int     // number of messages
	Vocab    int     // vocabulary size; 0 means 20000
	ZipfS    float64 // Zipf exponent; 0 means 1.07
	Groups   int     // 0 means 8
	Senders  int     // 0 means 40
	MinWords int     // 0 means 10
	MaxWords int     // 0 means 30
}

// Corpus is a generated vocabulary and message set.
type Corpus struct {
	Vocab []string // by rank: Vocab[0] is the most frequent word
	Docs  []Doc
	cfg   Config
}

var (
	consonants = []string{"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "tr"}
	vowels     = []string{"a", "e", "i", "o", "u", "ai", "ou"}
	accented   = map[string]string{"a": "á", "e": "é", "i": "ï", "o": "ö", "u": "ü"}
	cjk        = []rune("東京都大阪日本語中文字学校電話会社時間新年")
)

// Generate builds a corpus from cfg.
func Generate(cfg Config) *Corpus {
	if cfg.Vocab == 0 {
		cfg.Vocab = 20000
	}
	if cfg.ZipfS == 0 {
		cfg.ZipfS = 1.07
	}
	if cfg.Groups == 0 {
		cfg.Groups = 8
	}
	if cfg.Senders == 0 {
		cfg.Senders = 40
	}
	if cfg.MinWords == 0 {
		cfg.MinWords = 10
	}
	if cfg.MaxWords == 0 {
		cfg.MaxWords = 30
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x67726f7665))
	c := &Corpus{cfg: cfg}
	seen := map[string]bool{}
	for len(c.Vocab) < cfg.Vocab {
		w := word(r, len(c.Vocab))
		if !seen[w] {
			seen[w] = true
			c.Vocab = append(c.Vocab, w)
		}
	}
	zipf := rand.NewZipf(r, cfg.ZipfS, 1, uint64(cfg.Vocab-1))
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var sb strings.Builder
	for i := 0; i < cfg.Docs; i++ {
		sb.Reset()
		n := cfg.MinWords + r.IntN(cfg.MaxWords-cfg.MinWords+1)
		for j := 0; j < n; j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			w := c.Vocab[zipf.Uint64()]
			if j == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			sb.WriteString(w)
		}
		if r.IntN(4) == 0 {
			sb.WriteByte('!')
		}
		t = t.Add(time.Duration(1+r.IntN(120)) * time.Second)
		var id [16]byte
		for k := range id {
			id[k] = byte(r.Uint32())
		}
		c.Docs = append(c.Docs, Doc{
			Group:  groupName(r.IntN(cfg.Groups)),
			Sender: senderName(r.IntN(cfg.Senders)),
			ID:     id,
			Time:   t,
			Text:   sb.String(),
		})
	}
	return c
}

func groupName(i int) string  { return "group-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) }
func senderName(i int) string { return "sender-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) }

// word makes a pronounceable made-up word; about 2% carry diacritics and 1%
// are CJK, so search exercises its Unicode folding and bigram paths.
func word(r *rand.Rand, rank int) string {
	if rank%97 == 50 {
		n := 2 + r.IntN(2)
		var rs []rune
		for i := 0; i < n; i++ {
			rs = append(rs, cjk[r.IntN(len(cjk))])
		}
		return string(rs)
	}
	var sb strings.Builder
	syl := 1 + r.IntN(3)
	for i := 0; i < syl; i++ {
		sb.WriteString(consonants[r.IntN(len(consonants))])
		v := vowels[r.IntN(len(vowels))]
		if rank%53 == 7 && i == syl-1 {
			if a, ok := accented[v[:1]]; ok {
				v = a + v[1:]
			}
		}
		sb.WriteString(v)
	}
	return sb.String()
}

// QueryWord returns a word for benchmark queries: uniform over ranks
// [lo, hi) of the vocabulary, so queries hit neither only stopword-like head
// terms nor only hapaxes.
func (c *Corpus) QueryWord(r *rand.Rand, lo, hi int) string {
	hi = min(hi, len(c.Vocab))
	return c.Vocab[lo+r.IntN(hi-lo)]
}

// BenchQueries returns n query strings of a kind, deterministic for the
// corpus, in the store's query syntax: "one-term" (a word of rank 50..2000),
// "two-term-and" (a word of rank 10..200 and one of rank 50..2000) and
// "prefix" (the first three letters of a word of rank 50..2000, then *).
// The bleve benchmark builds its queries from the same words.
func BenchQueries(c *Corpus, kind string, n int) []string {
	r := rand.New(rand.NewPCG(7, uint64(len(kind))))
	out := make([]string, n)
	for i := range out {
		switch kind {
		case "one-term":
			out[i] = c.QueryWord(r, 50, 2000)
		case "two-term-and":
			out[i] = c.QueryWord(r, 10, 200) + " " + c.QueryWord(r, 50, 2000)
		case "prefix":
			w := []rune(c.QueryWord(r, 50, 2000))
			out[i] = string(w[:min(3, len(w))]) + "*"
		default:
			panic("searchcorpus: unknown query kind " + kind)
		}
	}
	return out
}
