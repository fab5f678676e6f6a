package chat

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"grove/node/api"
	"grove/node/api/apitest"
)

// FuzzScreen feeds a message with arbitrary sender and text (as a hostile
// or broken peer may send) into a model of arbitrary size and checks the
// screen: exactly the terminal's height, no line wider than the terminal,
// and no control character other than the UI's own styling escapes.
func FuzzScreen(f *testing.F) {
	f.Add("bob", "hello", 80, 24)
	f.Add("mal\x1b[2Jlory", "\x1b]0;pwned\x07\u202eevil\x9b31m\nnext", 80, 24)
	f.Add("宽字符", strings.Repeat("表情😀 ", 40), 61, 10)
	f.Add("", "\t\r\n\x00", 20, 3)
	f.Add(strings.Repeat("n", 300), strings.Repeat("x", 1000), 120, 40)
	f.Fuzz(fuzzOne)
}

func fuzzOne(t *testing.T, sender, text string, w, h int) {
	{
		if w < 1 || h < 1 || w > 400 || h > 200 {
			return
		}
		m := New(context.Background(), apitest.New("alice"), Options{Location: time.UTC})
		m.pendingEvery = 0
		m.loaded = true
		m.groups = []api.Group{{ID: "g", Name: sender, Members: 2}}
		m.cur = "g"
		nm, _ := m.Update(tea.WindowSizeMsg{Width: w, Height: h})
		m = nm.(Model)
		msg := api.Message{Group: "g", ID: "1", Sender: sender, Text: text, Time: apitest.Epoch0}
		nm, _ = m.Update(EventMsg(api.Event{Kind: api.EventMessage, Group: "g", Message: &msg}))
		m = nm.(Model)
		m.addNote("g", apitest.Epoch0, text)
		screen := m.screen()
		lines := strings.Split(screen, "\n")
		if len(lines) != h {
			t.Fatalf("%d lines on a %dx%d screen", len(lines), w, h)
		}
		for i, l := range lines {
			if n := ansi.StringWidth(l); n > w {
				t.Fatalf("line %d is %d wide on a %d-wide screen: %q", i, n, w, ansi.Strip(l))
			}
			for _, r := range ansi.Strip(l) {
				if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
					t.Fatalf("line %d has control character %U: %q", i, r, l)
				}
			}
		}
	}
}
