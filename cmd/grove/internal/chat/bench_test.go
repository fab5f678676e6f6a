package chat

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"grove/node/api"
	"grove/node/api/apitest"
)

// benchModel returns a model showing a group of n loaded messages of
// mixed length at 80x24.
func benchModel(b *testing.B, n int) Model {
	m := New(context.Background(), apitest.New("alice"), Options{Location: time.UTC})
	m.pendingEvery = 0
	m.loaded = true
	m.groups = []api.Group{{ID: "g", Name: "general", Members: 3}}
	m.cur = "g"
	m.full["g"] = true
	for i := range n {
		text := fmt.Sprintf("message %d ", i) + strings.Repeat("word ", i%40)
		m.addMessage(api.Message{Group: "g", ID: fmt.Sprintf("%032x", i), Sender: "bob", Text: text,
			Time: apitest.Epoch0.Add(time.Duration(i) * time.Minute)})
	}
	nm, _ := m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	return nm.(Model)
}

// BenchmarkView measures one frame; the floor is a frame of a group with
// a single page of history (what is shown is always one screen).
func BenchmarkView(b *testing.B) {
	for _, n := range []int{pageSize, 2000, maxHistory} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			m := benchModel(b, n)
			b.ReportAllocs()
			for b.Loop() {
				_ = m.View()
			}
		})
	}
}

// BenchmarkKeystroke measures typing one character: Update then View,
// what bubbletea does per key.
func BenchmarkKeystroke(b *testing.B) {
	for _, n := range []int{pageSize, 2000, maxHistory} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			m := benchModel(b, n)
			key := tea.KeyPressMsg{Code: 'a', Text: "a"}
			b.ReportAllocs()
			for b.Loop() {
				nm, _ := m.Update(key)
				_ = nm.View()
			}
		})
	}
}

// BenchmarkIncomingMessage measures a message event and the frame after
// it, as during a catch-up that delivers many messages.
func BenchmarkIncomingMessage(b *testing.B) {
	for _, n := range []int{pageSize, 2000, maxHistory} {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			m := benchModel(b, n)
			_ = m.View()
			i := n
			b.ReportAllocs()
			for b.Loop() {
				i++
				msg := api.Message{Group: "g", ID: fmt.Sprintf("%032x", i), Sender: "carol", Text: "new message text",
					Time: apitest.Epoch0.Add(time.Duration(i) * time.Minute)}
				nm, _ := m.Update(EventMsg(api.Event{Kind: api.EventMessage, Group: "g", Message: &msg}))
				m = nm.(Model)
				_ = m.View()
			}
		})
	}
}
