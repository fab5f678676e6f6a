package chat

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"

	"grove/node/api"
)

// Conversation commands (issue 21). The newest message of someone else is
// what /reply and /react act on; your own newest is what /edit and
// /delete act on.
//
//	/reply TEXT   /react EMOJI   /edit TEXT   /delete   /file PATH   /save PATH
func (m Model) convCommand(name, arg string) (Model, tea.Cmd, bool) {
	switch name {
	case "/reply", "/react", "/edit", "/delete", "/file", "/save":
	default:
		return m, nil, false
	}
	if m.cur == "" {
		m.setNotice(name+": no group selected (/group NAME)", true)
		return m, nil, true
	}
	conv, ok := m.svc.(api.Conversations)
	if !ok {
		m.setNotice(name+": this daemon does not support it", true)
		return m, nil, true
	}
	ctx, cur := m.ctx, m.cur
	other := m.newest(func(x api.Message) bool { return !x.Own && !x.Deleted })
	own := m.newest(func(x api.Message) bool { return x.Own && !x.Deleted })
	needArg := func(usage string) bool {
		if arg == "" {
			m.setNotice("usage: "+usage, true)
		}
		return arg != ""
	}
	needTarget := func(t *api.Message, what string) bool {
		if t == nil {
			m.setNotice(name+": no "+what+" message to act on", true)
		}
		return t != nil
	}
	sent := func(f func() (api.Message, error)) tea.Cmd {
		return func() tea.Msg {
			msg, err := f()
			return sentMsg{msg: msg, err: err}
		}
	}
	switch name {
	case "/reply":
		if !needArg("/reply TEXT") || !needTarget(other, "other's") {
			return m, nil, true
		}
		id := other.ID
		return m, sent(func() (api.Message, error) {
			return conv.Post(ctx, api.PostRequest{Group: cur, Text: arg, ReplyTo: id})
		}), true
	case "/react":
		if !needArg("/react EMOJI") || !needTarget(other, "other's") {
			return m, nil, true
		}
		id := other.ID
		return m, sent(func() (api.Message, error) {
			return conv.React(ctx, api.ReactRequest{Group: cur, ID: id, Emoji: arg})
		}), true
	case "/edit":
		if !needArg("/edit TEXT") || !needTarget(own, "own") {
			return m, nil, true
		}
		id := own.ID
		return m, sent(func() (api.Message, error) { return conv.Edit(ctx, cur, id, arg) }), true
	case "/delete":
		if !needTarget(own, "own") {
			return m, nil, true
		}
		id := own.ID
		return m, sent(func() (api.Message, error) { return conv.Delete(ctx, cur, id) }), true
	case "/file":
		if !needArg("/file PATH") {
			return m, nil, true
		}
		path, _ := filepath.Abs(arg)
		return m, sent(func() (api.Message, error) { return conv.Post(ctx, api.PostRequest{Group: cur, File: path}) }), true
	case "/save":
		f := m.newest(func(x api.Message) bool { return x.File != nil })
		if !needArg("/save PATH") || !needTarget(f, "file") {
			return m, nil, true
		}
		path, _ := filepath.Abs(arg)
		id := f.ID
		return m, func() tea.Msg {
			fl, err := conv.SaveFile(ctx, api.SaveRequest{Group: cur, File: id, Path: path})
			return noticeMsg{text: "saved " + fl.Saved, err: err}
		}, true
	}
	return m, nil, false
}

// startEdit puts the text of the newest own message in the input line to
// be edited (Up on an empty line): Enter saves the edit, Esc cancels.
func (m Model) startEdit() (Model, bool) {
	if _, ok := m.svc.(api.Conversations); !ok || m.cur == "" {
		return m, false
	}
	own := m.newest(func(x api.Message) bool {
		return x.Own && x.ID != "" && !x.Deleted && x.Kind != api.KindUnsupported && x.File == nil
	})
	if own == nil {
		return m, false
	}
	m.editing, m.replyTo, m.highlight = own.ID, "", own.ID
	m.input.SetValue(own.Text)
	m.input.CursorEnd()
	m.setNotice("editing your message: Enter saves, Esc cancels", false)
	return m, true
}

// selectReply picks the message the input line answers (Ctrl-R): the
// newest first, then at each press the one before it. The chosen message
// is highlighted and quoted in the notice line; Enter sends the reply,
// Esc cancels.
func (m Model) selectReply() Model {
	if _, ok := m.svc.(api.Conversations); !ok || m.cur == "" {
		m.setNotice("reply: no group selected, or the daemon cannot", true)
		return m
	}
	ms := m.msgs[m.cur]
	i := len(ms) - 1
	if m.replyTo != "" {
		i = slices.IndexFunc(ms, func(x api.Message) bool { return x.ID == m.replyTo }) - 1
	}
	for ; i >= 0; i-- {
		if x := ms[i]; x.ID != "" && !x.Deleted {
			break
		}
	}
	if i < 0 {
		if m.replyTo == "" {
			m.setNotice("reply: no message to reply to", true)
		}
		return m // the oldest loaded stays chosen
	}
	t := ms[i]
	m.replyTo, m.editing, m.highlight = t.ID, "", t.ID
	m.setNotice(fmt.Sprintf("replying to %s: %s (Enter sends, Esc cancels, Ctrl-R older)", t.Sender, oneLine(chatText(t))), false)
	return m
}

// endCompose leaves editing or replying.
func (m *Model) endCompose() {
	if m.editing != "" || m.replyTo != "" {
		m.highlight = ""
	}
	m.editing, m.replyTo = "", ""
}

// sendCompose sends the input line as the edit or reply being composed.
func (m Model) sendCompose(text string) (tea.Model, tea.Cmd) {
	conv, ok := m.svc.(api.Conversations)
	editing, replyTo := m.editing, m.replyTo
	m.endCompose()
	if !ok || m.cur == "" {
		return m, nil
	}
	ctx, cur := m.ctx, m.cur
	return m, func() tea.Msg {
		var msg api.Message
		var err error
		if editing != "" {
			msg, err = conv.Edit(ctx, cur, editing, text)
		} else {
			msg, err = conv.Post(ctx, api.PostRequest{Group: cur, Text: text, ReplyTo: replyTo})
		}
		return sentMsg{msg: msg, err: err}
	}
}

// newest returns the current group's newest message that ok accepts.
func (m *Model) newest(ok func(api.Message) bool) *api.Message {
	ms := m.msgs[m.cur]
	for i := len(ms) - 1; i >= 0; i-- {
		if ok(ms[i]) {
			return &ms[i]
		}
	}
	return nil
}

// chatText is a message's text with what happened to it: deleted,
// unsupported, a file, a reply, edited, reactions, read by.
func chatText(msg api.Message) string {
	switch msg.Kind {
	case api.KindDeleted:
		return "(message deleted)"
	case api.KindUnsupported:
		return "(unsupported message: a newer grove sent it)"
	}
	text := msg.Text
	if msg.File != nil {
		f := fmt.Sprintf("[file %s, %d bytes]", msg.File.Name, msg.File.Size)
		if msg.File.Width > 0 && msg.File.Height > 0 {
			f = fmt.Sprintf("[image %d×%d] %s", msg.File.Width, msg.File.Height, f)
		}
		text = strings.TrimSpace(f + " " + text)
	}
	if msg.ReplyTo != "" {
		text = "↪ " + text
	}
	if msg.Edited {
		text += " (edited)"
	}
	var rs []string
	for _, r := range msg.Reactions {
		rs = append(rs, fmt.Sprintf("%s %d", r.Emoji, r.Count))
	}
	slices.Sort(rs)
	if len(rs) > 0 {
		text += " [" + strings.Join(rs, ", ") + "]"
	}
	if len(msg.SeenBy) > 0 {
		text += fmt.Sprintf(" (seen by %d)", len(msg.SeenBy))
	}
	return text
}

// typing shows who is typing in the notice line.
func (m *Model) typing(ev api.Event) {
	if ev.Member == nil || ev.Group != m.cur {
		return
	}
	m.setNotice(clean(ev.Member.Name)+" is typing…", false)
}
