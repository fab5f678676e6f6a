package store

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// maxTokenLen bounds a token in bytes; longer words are cut at a rune
// boundary, at index and query time alike.
const maxTokenLen = 64

// token is one indexed term and its position in the token stream.
type token struct {
	term string
	pos  int
}

// isCJK reports runes of scripts written without spaces between words. They
// are indexed as overlapping bigrams, which finds words of any length without
// a dictionary.
func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r)
}

// dropMark removes combining marks after NFKD (so "é" folds to "e") but keeps
// the kana voicing marks, which change the letter rather than decorate it.
var dropMark = runes.Predicate(func(r rune) bool {
	return unicode.Is(unicode.Mn, r) && r != 0x3099 && r != 0x309A
})

// normalise case-folds and removes diacritics: fold, NFKD, drop marks, NFC
// (NFC recomposes Hangul syllables that NFKD split into jamo).
func normalise(s string) string {
	t := transform.Chain(cases.Fold(), norm.NFKD, runes.Remove(dropMark), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		return s
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// latinFold maps every rune below latinFoldLimit (ASCII, Latin-1, Latin
// Extended-A and B) to what normalise makes of it. None of these runes is a
// combining mark and none composes with its neighbours under NFC, so folding
// rune by rune equals folding the whole text (TestLatinFoldMatchesNormalise
// checks this); it saves the x/text pipeline for most European text.
const latinFoldLimit = 0x250

var latinFold = func() (t [latinFoldLimit]string) {
	for r := rune(0); r < latinFoldLimit; r++ {
		t[r] = normalise(string(r))
	}
	return t
}()

func needsFullNormalise(s string) bool {
	for _, r := range s {
		if r >= latinFoldLimit {
			return true
		}
	}
	return false
}

// tokenize splits text into terms: runs of letters and digits, case-folded
// and without diacritics; CJK runs become overlapping bigrams (a lone CJK
// rune is its own term). fn is called for every token in order.
func tokenize(text string, fn func(term string, pos int)) {
	pos := 0
	if isASCII(text) {
		var buf [maxTokenLen]byte
		n := 0
		flush := func() {
			if n > 0 {
				fn(string(buf[:n]), pos)
				pos++
				n = 0
			}
		}
		for i := 0; i < len(text); i++ {
			c := text[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				flush()
				continue
			}
			if n < maxTokenLen {
				buf[n] = c
				n++
			}
		}
		flush()
		return
	}
	if needsFullNormalise(text) {
		text = normalise(text)
	}
	word := make([]byte, 0, maxTokenLen)
	flushWord := func() {
		if len(word) > 0 {
			fn(string(word), pos)
			pos++
			word = word[:0]
		}
	}
	var cjk []rune
	flushCJK := func() {
		switch len(cjk) {
		case 0:
		case 1:
			fn(string(cjk), pos)
			pos++
		default:
			for i := 0; i+1 < len(cjk); i++ {
				fn(string(cjk[i:i+2]), pos)
				pos++
			}
		}
		cjk = cjk[:0]
	}
	letter := func(r rune) {
		switch {
		case isCJK(r):
			flushWord()
			cjk = append(cjk, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r):
			flushCJK()
			if len(word)+utf8.RuneLen(r) <= maxTokenLen {
				word = utf8.AppendRune(word, r)
			}
		default:
			flushWord()
			flushCJK()
		}
	}
	for _, r := range text {
		if r < latinFoldLimit {
			// Already normalised if the text went through normalise (these
			// runes map to themselves then); otherwise fold here.
			for _, f := range latinFold[r] {
				letter(f)
			}
			continue
		}
		letter(r)
	}
	flushWord()
	flushCJK()
}

// tokens returns the tokens of text as a slice.
func tokens(text string) []token {
	var out []token
	tokenize(text, func(term string, pos int) { out = append(out, token{term, pos}) })
	return out
}
