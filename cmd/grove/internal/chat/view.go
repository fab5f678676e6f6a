package chat

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"grove/node/api"
)

// Layout constants: the group list's width, and the narrowest terminal
// that still shows it.
const (
	listWidth    = 20
	listMinWidth = 60
	markWidth    = 8 // "15:04 > " before a message's sender
)

type styles struct {
	title, sender, own, stamp, faint, note, day, errNotice, status, sel, highlight, unread lipgloss.Style
}

// newStyles returns the UI's styles; with noColor they use only bold,
// faint, italic and reverse (NO_COLOR asks for no colour, not no emphasis).
func newStyles(noColor bool) styles {
	s := lipgloss.NewStyle
	fg := func(st lipgloss.Style, c string) lipgloss.Style {
		if noColor {
			return st
		}
		return st.Foreground(lipgloss.Color(c))
	}
	hl := s().Reverse(true)
	if !noColor {
		hl = s().Background(lipgloss.Color("3")).Foreground(lipgloss.Color("0"))
	}
	return styles{
		title:     fg(s().Bold(true), "12"),
		sender:    fg(s().Bold(true), "6"),
		own:       fg(s().Bold(true), "2"),
		stamp:     s().Faint(true),
		faint:     s().Faint(true),
		note:      s().Faint(true).Italic(true),
		day:       fg(s(), "8"),
		errNotice: fg(s(), "9"),
		status:    s().Reverse(true),
		sel:       s().Reverse(true),
		highlight: hl,
		unread:    fg(s().Bold(true), "11"),
	}
}

// line is one rendered row of the message pane; msgID names the message
// it belongs to, if any (search jumps look for it).
type line struct {
	text  string
	msgID string
}

// clean makes text from the network safe to print: control characters
// (which could move the cursor, retitle the window or hide text) and
// bidirectional overrides (which could make a message look like another)
// become U+FFFD; tabs become spaces.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0,
			unicode.Is(unicode.Cf, r), r == 0x2028, r == 0x2029: // zero-width, bidi and other invisible format characters
			return '\uFFFD'
		}
		return r
	}, s)
}

func (m *Model) bodyHeight() int { return max(1, m.height-4) }

// showList: the group list shows on wide enough screens, except beside an
// invite code, which takes every column so that copying its lines copies
// nothing else.
func (m *Model) showList() bool {
	return m.width >= listMinWidth && !(m.pane == paneInfo && m.infoTitle == "invite")
}

func (m *Model) paneWidth() int {
	w := m.width
	if m.showList() {
		w -= listWidth + 1
	}
	return max(10, w)
}

// tlCache is a group's rendered timeline for one width and highlight, as
// of a version of the group's messages and notes.
type tlCache struct {
	width     int
	highlight string
	version   uint64
	lines     []line
	lastDay   string
	lastTime  time.Time
}

// timeline returns group's messages and notes, oldest first, with day
// separators, wrapped to width; the result is shared, not to be modified.
func (m *Model) timeline(group string, width int) []line {
	if c := m.tl[group]; c != nil && c.width == width && c.highlight == m.highlight && c.version == m.version[group] {
		return c.lines
	}
	c := &tlCache{width: width, highlight: m.highlight, version: m.version[group]}
	c.lines = m.renderTimeline(group, width, c)
	m.tl[group] = c
	return c.lines
}

func (m *Model) dayOf(t time.Time) string { return t.In(m.opts.Location).Format("Mon 2 Jan 2006") }

func (m *Model) dayLine(day string, width int) line {
	return line{text: m.st.day.Render(center(" "+day+" ", width, '─'))}
}

func (m *Model) renderTimeline(group string, width int, c *tlCache) []line {
	ms, ns := m.msgs[group], m.notes[group]
	var out []line
	if g := m.group(group); m.full[group] && g != nil && !g.JoinedAt.IsZero() {
		// A member who joined through an invite: nothing from before.
		text := "you joined on " + g.JoinedAt.In(m.opts.Location).Format("Mon 2 Jan 2006 15:04") +
			": messages from before are not available on this device"
		for _, w := range wrap(text, width) {
			out = append(out, line{text: m.st.faint.Render(center(w, width, ' '))})
		}
	} else if m.full[group] {
		out = append(out, line{text: m.st.faint.Render(center("beginning of history", width, ' '))})
	} else if len(ms) > 0 {
		out = append(out, line{text: m.st.faint.Render(center("PgUp loads older messages", width, ' '))})
	}
	day := func(t time.Time) {
		if d := m.dayOf(t); d != c.lastDay {
			c.lastDay = d
			out = append(out, m.dayLine(d, width))
		}
		if t.After(c.lastTime) {
			c.lastTime = t
		}
	}
	i, j := 0, 0
	for i < len(ms) || j < len(ns) {
		if j < len(ns) && (i == len(ms) || ns[j].time.Before(ms[i].Time)) {
			day(ns[j].time)
			out = append(out, m.noteLines(ns[j], width)...)
			j++
			continue
		}
		day(ms[i].Time)
		out = append(out, m.messageLines(ms[i], width)...)
		i++
	}
	return out
}

// noteLines renders a system note: time, a dot, the text, faint.
func (m *Model) noteLines(n note, width int) []line {
	var out []line
	for k, l := range wrap(clean(n.text), width-markWidth) {
		prefix := strings.Repeat(" ", markWidth)
		if k == 0 {
			prefix = n.time.In(m.opts.Location).Format("15:04") + " · "
		}
		out = append(out, line{text: m.st.note.Render(prefix + l)})
	}
	return out
}

// messageLines renders one message: time, mark, sender and text, wrapped
// with a hanging indent.
func (m *Model) messageLines(msg api.Message, width int) []line {
	mark := " "
	switch {
	case msg.Orphaned:
		mark = "~"
	case msg.Resent:
		mark = "*"
	case msg.Own:
		mark = ">"
	}
	sender := clean(msg.Sender)
	if sender == "" {
		sender = "?"
	}
	var body []string
	for i, para := range strings.Split(chatText(msg), "\n") { // conv.go
		p := clean(para)
		if i == 0 {
			p = sender + ": " + p
		}
		body = append(body, wrap(p, width-markWidth)...)
	}
	if msg.Pending {
		body[len(body)-1] += " ..."
	}
	senderStyle := m.st.sender
	if msg.Own {
		senderStyle = m.st.own
	}
	var out []line
	for k, l := range body {
		prefix := strings.Repeat(" ", markWidth)
		if k == 0 {
			prefix = m.st.stamp.Render(msg.Time.In(m.opts.Location).Format("15:04")) + " " + mark + " "
			if rest, ok := strings.CutPrefix(l, sender+":"); ok {
				l = senderStyle.Render(sender) + ":" + rest
			}
		}
		text := prefix + l
		switch {
		case msg.ID != "" && msg.ID == m.highlight:
			text = m.st.highlight.Render(pad(ansi.Strip(text), width))
		case msg.Orphaned || msg.Pending:
			text = m.st.faint.Render(ansi.Strip(text))
		}
		out = append(out, line{text: text, msgID: msg.ID})
	}
	return out
}

// wrap wraps s at width columns, breaking words longer than a line.
func wrap(s string, width int) []string {
	width = max(4, width)
	if s == "" {
		return []string{""}
	}
	return strings.Split(ansi.Wrap(s, width, ""), "\n")
}

func center(s string, width int, fill rune) string {
	w := ansi.StringWidth(s)
	if w >= width {
		return ansi.Truncate(s, width, "")
	}
	left := (width - w) / 2
	return strings.Repeat(string(fill), left) + s + strings.Repeat(string(fill), width-w-left)
}

// pad cuts or pads s to exactly width columns.
func pad(s string, width int) string {
	if width <= 0 {
		return ""
	}
	s = ansi.Truncate(s, width, "…")
	if w := ansi.StringWidth(s); w < width {
		s += strings.Repeat(" ", width-w)
	}
	return s
}

// commas formats n with thousands separators: 2000 -> "2,000".
func commas(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// View renders the whole screen: title, group list and pane, notice,
// input line and status bar, exactly width x height.
func (m Model) View() tea.View {
	v := tea.NewView(m.screen())
	v.AltScreen = true
	v.WindowTitle = "grove chat"
	return v
}

// screen is the text of View.
func (m Model) screen() string {
	if m.quitting {
		return ""
	}
	w, bh := max(1, m.width), m.bodyHeight()
	rows := make([]string, 0, m.height)
	rows = append(rows, pad(m.st.title.Render(m.titleText()), w))

	right := m.paneLines(bh)
	var left []string
	if m.showList() {
		left = m.listLines(bh)
	}
	pw := m.paneWidth()
	for i := 0; i < bh; i++ {
		r := ""
		if i < len(right) {
			r = right[i]
		}
		if left != nil {
			rows = append(rows, pad(left[i], listWidth)+m.st.faint.Render("│")+pad(r, pw))
		} else {
			rows = append(rows, pad(r, w))
		}
	}
	switch {
	case m.notice == "":
		rows = append(rows, pad("", w))
	case m.noticeErr:
		rows = append(rows, pad(m.st.errNotice.Render("! "+m.notice), w))
	default:
		rows = append(rows, pad(m.st.faint.Render(m.notice), w))
	}
	in := m.input
	in.SetWidth(max(1, w-3))
	rows = append(rows, pad(in.View(), w))
	rows = append(rows, m.st.status.Render(pad(m.statusText(), w)))
	if m.height < len(rows) {
		// Too short for everything: keep the input and status lines.
		rows = rows[len(rows)-max(1, m.height):]
	}
	return strings.Join(rows, "\n")
}

func (m *Model) titleText() string {
	t := " grove"
	if m.self.Name != "" {
		t += " · " + clean(m.self.Name)
	}
	if g := m.group(m.cur); g != nil {
		t += fmt.Sprintf(" · #%s · %d %s", clean(g.Name), g.Members, plural(g.Members, "member", "members"))
		if g.Admin {
			t += " · admin"
		}
	}
	return t
}

func (m *Model) statusText() string {
	if m.offline != "" {
		if n := len(m.queued); n > 0 {
			// Said here too: the notice that said it expires.
			return fmt.Sprintf(" OFFLINE (%d waiting to send): %s", n, m.offline)
		}
		return " OFFLINE: " + m.offline
	}
	if !m.loaded {
		return " connecting…"
	}
	s := fmt.Sprintf(" peers %d", m.peers)
	if g := m.group(m.cur); g != nil {
		s += fmt.Sprintf(" · epoch %d", g.Epoch)
		if g.Sync.CatchingUp {
			s += fmt.Sprintf(" · catching up %s/%s", commas(g.Sync.Done), commas(g.Sync.Total))
		} else {
			s += " · up to date"
		}
		s += reachText(g.Reach)
	}
	if m.peers == 0 {
		s += " · no peers connected"
	}
	return s + " · /help"
}

// reachText is the status bar's reachability note for a group: how many
// members it reaches, or since when it reaches none.
func reachText(r api.Reach) string {
	switch {
	case r.Others == 0:
		return ""
	case r.CutOff():
		s := " · no member reachable"
		if !r.CutOffSince.IsZero() {
			s += " since " + r.CutOffSince.Local().Format("15:04")
		}
		if r.Waiting > 0 {
			s += fmt.Sprintf(", %d waiting", r.Waiting)
		}
		return s
	}
	return fmt.Sprintf(" · %d/%d reachable", r.Reachable, r.Others)
}

func (m *Model) listLines(h int) []string {
	out := make([]string, h)
	out[0] = m.st.faint.Render(" groups")
	for i, g := range m.groups {
		if i+1 >= h {
			break
		}
		unread := ""
		if g.Unread > 0 {
			unread = " " + strconv.Itoa(g.Unread)
		}
		if g.Muted {
			unread += "~" // muted: counted, never notified
		}
		mark := "  "
		if g.ID == m.cur {
			mark = "▶ "
		}
		name := ansi.Truncate("#"+clean(g.Name), listWidth-len(mark)-len(unread), "…")
		row := pad(mark+name, listWidth-len(unread))
		switch {
		case g.ID == m.cur:
			row = m.st.sel.Render(row + pad(unread, len(unread)))
		case g.Muted:
			row = row + m.st.faint.Render(unread)
		case unread != "":
			row = row + m.st.unread.Render(unread)
		}
		out[i+1] = row
	}
	return out
}

func (m *Model) paneLines(h int) []string {
	pw := m.paneWidth()
	switch m.pane {
	case paneSearch:
		return m.searchLines(h, pw)
	case paneInfo:
		out := []string{m.st.title.Render(" " + m.infoTitle)}
		for _, l := range m.info {
			if l != "" && l == m.infoCode && m.infoTitle == "invite" {
				// Cut at the edge, not indented: the selected lines
				// hold the code and nothing else.
				for r := []rune(l); len(r) > 0; r = r[min(len(r), pw):] {
					out = append(out, string(r[:min(len(r), pw)]))
				}
				continue
			}
			for _, w := range wrap(l, pw-1) {
				out = append(out, " "+w)
			}
		}
		return out[:min(len(out), h)]
	}
	if m.cur == "" {
		if !m.loaded {
			return []string{" connecting to the daemon…"}
		}
		return []string{" No group selected.", "", " /create NAME   make a group", " /join CODE     join one with an invite code", " /help          everything else"}
	}
	lines := m.timeline(m.cur, pw)
	if len(lines) <= 1 && m.loading[m.cur] {
		return []string{" loading…"}
	}
	end := max(0, len(lines)-m.scroll)
	start := max(0, end-h)
	out := make([]string, 0, h)
	for _, l := range lines[start:end] {
		out = append(out, l.text)
	}
	// Messages sit at the bottom of the pane, as in every chat.
	if len(out) < h {
		out = append(make([]string, h-len(out)), out...)
	}
	return out
}

func (m *Model) searchLines(h, pw int) []string {
	out := []string{m.st.title.Render(fmt.Sprintf(" search %q: %d %s · Up/Down, Enter jumps, Esc closes", clean(m.query), len(m.hits), plural(len(m.hits), "hit", "hits")))}
	if len(m.hits) == 0 {
		return append(out, "", " nothing found")
	}
	avail := h - 1
	first := 0
	if m.hitSel >= avail {
		first = m.hitSel - avail + 1
	}
	for i := first; i < len(m.hits) && i-first < avail; i++ {
		msg := m.hits[i].Message
		mark := "  "
		if i == m.hitSel {
			mark = "▶ "
		}
		text := strings.Join(strings.Fields(clean(msg.Text)), " ")
		row := fmt.Sprintf("%s#%s %s %s: %s", mark, m.groupName(msg.Group),
			msg.Time.In(m.opts.Location).Format("2 Jan 15:04"), clean(msg.Sender), text)
		row = pad(row, pw)
		if i == m.hitSel {
			row = m.st.sel.Render(row)
		}
		out = append(out, row)
	}
	return out
}
