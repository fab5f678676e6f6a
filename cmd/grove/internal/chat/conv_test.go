package chat

import (
	"context"
	"strings"
	"testing"
	"time"

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
