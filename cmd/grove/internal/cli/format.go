package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// table prints aligned columns separated by two spaces. The last column may
// hold several lines; its continuation lines are indented to its column.
type table struct {
	rows [][]string
}

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r[:len(r)-1] {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range t.rows {
		indent := 0
		for i, c := range r[:len(r)-1] {
			b.WriteString(c)
			pad := widths[i] - utf8.RuneCountInString(c) + 2
			b.WriteString(strings.Repeat(" ", pad))
			indent += widths[i] + 2
		}
		last := strings.Split(r[len(r)-1], "\n")
		for i, l := range last {
			if i > 0 {
				b.WriteString(strings.Repeat(" ", indent))
			}
			b.WriteString(l)
			// Trailing padding of short rows is noise.
			s := strings.TrimRight(b.String(), " ")
			b.Reset()
			fmt.Fprintln(w, s)
		}
	}
}

// sanitize makes a string from the network safe for one terminal line:
// control characters (escape sequences could rewrite the screen), line
// breaks and bidirectional overrides (which can make text read differently
// than it is) are shown escaped, and invalid UTF-8 as U+FFFD.
func sanitize(s string) string { return clean(s, false) }

// sanitizeText is sanitize for message text, which keeps line breaks; tabs
// become spaces so that columns stay aligned.
func sanitizeText(s string) string { return clean(s, true) }

func clean(s string, multiline bool) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case multiline && r == '\n':
			b.WriteRune(r)
		case multiline && r == '\t':
			b.WriteString("    ")
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		case isHidden(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isHidden reports characters that render as nothing or reorder the text
// around them (format characters: zero-width spaces and joiners, bidi marks,
// overrides and isolates, the byte order mark; line and paragraph
// separators): shown escaped, so text cannot hide or disguise itself.
func isHidden(r rune) bool {
	return unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
}
