package chat

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"grove/node/api"
	"grove/node/api/apitest"
)

// convFake adds the conversation calls to the Fake, recording them and
// answering with the target message as it would then be.
type convFake struct {
	*apitest.Fake
	calls []string
}

var _ api.Conversations = (*convFake)(nil)

func (c *convFake) target(group, id string) api.Message {
	ms, _ := c.Log(context.Background(), group, 0)
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	return api.Message{Group: group, ID: id}
}

func (c *convFake) Post(ctx context.Context, req api.PostRequest) (api.Message, error) {
	c.calls = append(c.calls, "post "+req.ReplyTo+" "+req.Text+" "+req.File)
	m, err := c.Send(ctx, req.Group, req.Text+"!")
	m.ReplyTo = req.ReplyTo
	return m, err
}

func (c *convFake) React(ctx context.Context, req api.ReactRequest) (api.Message, error) {
	c.calls = append(c.calls, "react "+req.ID+" "+req.Emoji)
	m := c.target(req.Group, req.ID)
	m.Reactions = []api.Reaction{{Emoji: req.Emoji, Count: 1, By: []string{"alice"}, Own: true}}
	return m, nil
}

func (c *convFake) Edit(ctx context.Context, group, id, text string) (api.Message, error) {
	c.calls = append(c.calls, "edit "+id+" "+text)
	m := c.target(group, id)
	m.Text, m.Edited = text, true
	return m, nil
}

func (c *convFake) Delete(ctx context.Context, group, id string) (api.Message, error) {
	c.calls = append(c.calls, "delete "+id)
	m := c.target(group, id)
	m.Text, m.Deleted, m.Kind = "", true, api.KindDeleted
	return m, nil
}

func (c *convFake) Typing(ctx context.Context, group string) error          { return nil }
func (c *convFake) SetReceipts(ctx context.Context, on bool) error          { return nil }
func (c *convFake) Files(ctx context.Context, g string) ([]api.File, error) { return nil, nil }
func (c *convFake) SaveFile(ctx context.Context, req api.SaveRequest) (api.File, error) {
	return api.File{}, api.Errorf(api.CodeUnavailable, "no member holds it")
}

// TestConversationCommands: /reply and /react act on the newest message
// of someone else, /edit and /delete on your own newest; the screen
// shows the reply mark, the reaction, "(edited)" and the deleted
// message's placeholder instead of its text; a typing event is shown.
func TestConversationCommands(t *testing.T) {
	f := fakeWith(t)
	c := &convFake{Fake: f}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, err := f.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessFor(ctx, t, f, c, Options{Location: time.UTC}, events)
	must(t, f.Receive("general", "bob", "ship it?"))
	h.pump()
	bobs := h.m.newest(func(m api.Message) bool { return !m.Own })
	if bobs == nil || bobs.Text != "ship it?" {
		t.Fatalf("bob's message: %+v", bobs)
	}
	h.enter("/reply yes")
	h.enter("/react 👍")
	if len(c.calls) != 2 || c.calls[0] != "post "+bobs.ID+" yes " || c.calls[1] != "react "+bobs.ID+" 👍" {
		t.Fatalf("calls %q", c.calls)
	}
	// (The Fake's own event for the post carries no reply target.)
	h.contains("alice: yes!", "bob: ship it? [👍 1]")
	own := h.m.newest(func(m api.Message) bool { return m.Own })
	h.enter("/edit yes, now")
	h.contains("alice: yes, now (edited)")
	h.enter("/delete")
	if last := c.calls[len(c.calls)-1]; last != "delete "+own.ID {
		t.Fatalf("delete acted on %q, want own %s", last, own.ID)
	}
	h.contains("alice: (message deleted)")
	h.lacks("yes, now")
	h.enter("/save /tmp/x")
	h.contains("no file message")
	h.update(EventMsg(api.Event{Kind: api.EventTyping, Group: h.m.cur, Member: &api.Member{Name: "bob\x1b[2J"}}))
	if !strings.Contains(h.screen(), "is typing") || strings.Contains(h.m.screen(), "\x1b[2J") {
		t.Fatalf("typing notice:\n%s", h.screen())
	}
}

func TestChatTextMarks(t *testing.T) {
	for _, c := range []struct {
		m    api.Message
		want string
	}{
		{api.Message{Text: "hi", ReplyTo: "ab"}, "↪ hi"},
		{api.Message{File: &api.File{Name: "s.png", Size: 9, Width: 1024, Height: 768}}, "[image 1024×768] [file s.png, 9 bytes]"},
		{api.Message{Text: "gone", Kind: api.KindDeleted, Deleted: true}, "(message deleted)"},
		{api.Message{Kind: api.KindUnsupported}, "(unsupported message: a newer grove sent it)"},
		{api.Message{Text: "look", File: &api.File{Name: "a.png", Size: 3}, Edited: true,
			Reactions: []api.Reaction{{Emoji: "🎉", Count: 2}, {Emoji: "👍", Count: 1}}, SeenBy: []string{"bob"}},
			"[file a.png, 3 bytes] look (edited) [🎉 2, 👍 1] (seen by 1)"},
	} {
		if got := chatText(c.m); got != c.want {
			t.Errorf("chatText = %q, want %q", got, c.want)
		}
	}
}

// TestReplyAndEditKeys: Ctrl-R chooses the message to answer (the newest,
// then at each press the one before), highlighted and quoted, and Enter
// sends the line as a reply to it; Up on an empty line puts your newest
// message in the input and Enter sends the edit; Esc cancels either, and
// Up on a line being typed does not touch it.
func TestReplyAndEditKeys(t *testing.T) {
	f := fakeWith(t)
	c := &convFake{Fake: f}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, err := f.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessFor(ctx, t, f, c, Options{Location: time.UTC}, events)
	must(t, f.Receive("general", "bob", "first question"))
	must(t, f.Receive("general", "carol", "second question"))
	h.pump()
	ctrlR := tea.KeyPressMsg{Code: 'r', Mod: tea.ModCtrl}
	carols := h.m.newest(func(m api.Message) bool { return m.Text == "second question" })
	bobs := h.m.newest(func(m api.Message) bool { return m.Text == "first question" })
	h.update(ctrlR)
	if h.m.replyTo != carols.ID || h.m.highlight != carols.ID {
		t.Fatalf("first Ctrl-R chose %q, want carol's %q", h.m.replyTo, carols.ID)
	}
	h.contains("replying to carol: second question")
	h.update(ctrlR)
	if h.m.replyTo != bobs.ID {
		t.Fatalf("second Ctrl-R chose %q, want bob's %q", h.m.replyTo, bobs.ID)
	}
	h.enter("the answer")
	if last := c.calls[len(c.calls)-1]; last != "post "+bobs.ID+" the answer " {
		t.Fatalf("reply sent as %q", last)
	}
	if h.m.replyTo != "" || h.m.highlight != "" {
		t.Fatal("still replying after the reply was sent")
	}
	h.pump()
	h.contains("alice: the answer!")

	// Esc cancels a reply: the next line is a plain message.
	h.update(ctrlR)
	h.key(tea.KeyEscape)
	h.enter("plain")
	if last := c.calls[len(c.calls)-1]; last != "post "+bobs.ID+" the answer " {
		t.Fatalf("a cancelled reply still replied: %q", last)
	}
	h.pump()

	// Up on an empty line edits your newest message.
	own := h.m.newest(func(m api.Message) bool { return m.Own })
	if own == nil || own.Text != "plain" {
		t.Fatalf("own newest %+v", own)
	}
	h.key(tea.KeyUp)
	if h.m.editing != own.ID || h.m.input.Value() != "plain" {
		t.Fatalf("editing %q with %q", h.m.editing, h.m.input.Value())
	}
	h.update(tea.KeyPressMsg{Code: 'y', Text: "y"})
	h.key(tea.KeyEnter)
	if last := c.calls[len(c.calls)-1]; last != "edit "+own.ID+" plainy" {
		t.Fatalf("edit sent as %q", last)
	}
	h.contains("alice: plainy (edited)")

	// Esc cancels an edit: nothing is sent.
	n := len(c.calls)
	h.key(tea.KeyUp)
	h.key(tea.KeyEscape)
	if len(c.calls) != n || h.m.editing != "" || h.m.input.Value() != "" {
		t.Fatalf("cancelled edit: calls %q, editing %q, input %q", c.calls[n:], h.m.editing, h.m.input.Value())
	}
	// Up on a line being typed scrolls instead: the line stays.
	h.update(tea.KeyPressMsg{Code: 'x', Text: "x"})
	h.key(tea.KeyUp)
	if h.m.editing != "" || h.m.input.Value() != "x" {
		t.Fatalf("Up on a typed line: editing %q, input %q", h.m.editing, h.m.input.Value())
	}
}
