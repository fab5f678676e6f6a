package cli

import (
	"strings"
	"testing"
)

// Zero-width and bidi characters in a name or message are shown escaped, so
// "victim\u200b" can never print like "victim".
func TestCleanShowsHiddenCharacters(t *testing.T) {
	for _, in := range []string{"victim\u200b", "vic\u200dtim", "\u202eevil", "\ufeffbob", "a\u2066b", "x\u2028y", "bob\x1b[31m"} {
		out := clean(in, false)
		if !strings.Contains(out, `\u`) && !strings.Contains(out, `\x`) {
			t.Errorf("clean(%q) = %q: hidden character not escaped", in, out)
		}
	}
	if got := clean("Zoë 李雷 🌲", false); got != "Zoë 李雷 🌲" {
		t.Errorf("clean changed visible text: %q", got)
	}
}
