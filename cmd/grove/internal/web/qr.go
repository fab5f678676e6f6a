package web

import (
	"strings"

	"rsc.io/qr"
)

// qrRows encodes text as a QR symbol (error correction level L, the
// densest: an invite code is shown on a screen, not printed on a worn
// label) and returns its rows, '1' for a dark module, or nil when text is
// too long for any QR version.
func qrRows(text string) []string {
	c, err := qr.Encode(text, qr.L)
	if err != nil {
		return nil
	}
	rows := make([]string, c.Size)
	var b strings.Builder
	for y := range c.Size {
		b.Reset()
		for x := range c.Size {
			if c.Black(x, y) {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
		rows[y] = b.String()
	}
	return rows
}
