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
