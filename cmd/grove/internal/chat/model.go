package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"grove/node/api"
)

// pageSize is how many more messages one scroll past the top asks for.
const pageSize = 100

// maxHistory bounds how far back a search jump or scrollback loads, so a
// huge group cannot make the UI hold unbounded history.
const maxHistory = 20000

// offlineText is the status bar's message when the daemon is gone and
// the connection does not come back by itself (no Options.Redial);
// redialText when Run redials.
const (
	offlineText = "daemon not reachable (is grove up running? then restart chat)"
	redialText  = "daemon not reachable: reconnecting (what you send waits until it is back)"
)

// noticeFor is how long a notice stays on screen (an error twice as long);
// a newer one replaces it at once.
const noticeFor = 8 * time.Second

// joinTimeout bounds /join, as --timeout's default bounds `grove join`.
const joinTimeout = 5 * time.Minute

// Options configure a Model.
type Options struct {
	// Group is the group to open first, by name or id; empty opens the
	// first group.
	Group string
	// Location is the time zone messages are shown in; nil is time.Local.
	Location *time.Location
	// NoColor turns colours off (the NO_COLOR convention).
	NoColor bool
	// Redial, if set, connects to the daemon again after the connection
	// ended (a daemon restart): Run calls it until it succeeds, then
	// carries on over the new connection, which it closes when done if
	// it is an io.Closer. Lines sent meanwhile wait and go out then.
	Redial func(ctx context.Context) (api.Service, error)
}

// ReconnectedMsg reports that Run connected to the daemon again: Svc
// replaces the model's service from now on.
type ReconnectedMsg struct{ Svc api.Service }

// EventMsg carries one event of api.Service.Subscribe into the model.
type EventMsg api.Event

// DisconnectedMsg reports that the event stream ended: the daemon stopped
// or the connection to it broke.
type DisconnectedMsg struct{}

// pane is what the main area shows.
type pane int

const (
	paneMessages pane = iota
	paneSearch
	paneInfo // help, members, invite: a titled list of lines
)

// note is a system line in a group's timeline: a member change, a key
// rotation, a fork settlement.
type note struct {
	time time.Time
	text string
}

// Model is the chat UI state; it implements tea.Model.
type Model struct {
	svc  api.Service
	ctx  context.Context
	opts Options
	st   styles

	self    api.Status
	loaded  bool
	groups  []api.Group
	cur     string // current group id; empty when there is none
	msgs    map[string][]api.Message
	notes   map[string][]note
	limit   map[string]int  // how many messages were asked of Log
	full    map[string]bool // all of the group's history is loaded
	loading map[string]bool
	// version counts changes to a group's messages and notes; tl caches
	// each group's rendered timeline (a frame draws only one screen of it,
	// but wrapping the whole history per frame costs O(history)).
	version map[string]uint64
	tl      map[string]*tlCache
	// ids holds the message ids in msgs per group, so that adding one
	// need not scan the history for a duplicate.
	ids map[string]map[string]bool
	// pending counts the messages per group marked Pending.
	pending map[string]int

	input         textinput.Model
	width, height int
	// editing is the own message the input line replaces (Up on an
	// empty line), replyTo the message it answers (Ctrl-R); at most one
	// is set (conv.go).
	editing, replyTo string
	scroll           int // lines scrolled up from the newest
	highlight        string

	pane      pane
	query     string
	hits      []api.SearchHit
	hitSel    int
	infoTitle string
	info      []string
	infoCode  string // the invite code the info pane shows, else ""
	members   []api.Member

	// pendingEvery is how often history is reloaded while an own message
	// of the current group is still pending (the daemon sends no event
	// when its outbox finally publishes it); zero turns that off.
	pendingEvery time.Duration
	pendingTick  bool

	notice    string
	noticeErr bool
	// noticeSeq counts notices; noticeArmed is the one whose expiry is
	// scheduled (noticeCmd). noticeFor zero keeps notices (tests).
	noticeSeq, noticeArmed int
	noticeFor              time.Duration
	// queued holds lines typed while the daemon was unreachable, sent in
	// order once it is back.
	queued []queuedLine
	// flushing: the queued lines are being sent, one after the other
	// (sentMsg sends the next), so that they keep their order.
	flushing bool

	peers    int
	offline  string
	quitting bool
}

// New returns the model of a chat UI over svc. ctx bounds every API call.
func New(ctx context.Context, svc api.Service, opts Options) Model {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	ti := textinput.New()
	ti.Prompt = "> "
	ti.Placeholder = "message, or /help"
	ti.CharLimit = 4096
	// A static cursor: no blink timer, so no redraws while idle.
	ist := textinput.DefaultDarkStyles()
	ist.Cursor.Blink = false
	if opts.NoColor {
		ist.Focused = textinput.StyleState{}
		ist.Blurred = textinput.StyleState{}
		ist.Cursor.Color = nil
	}
	ti.SetStyles(ist)
	ti.Focus()
	return Model{
		svc: svc, ctx: ctx, opts: opts, st: newStyles(opts.NoColor),
		msgs: map[string][]api.Message{}, notes: map[string][]note{},
		limit: map[string]int{}, full: map[string]bool{}, loading: map[string]bool{},
		version: map[string]uint64{}, tl: map[string]*tlCache{}, ids: map[string]map[string]bool{},
		pending: map[string]int{},
		input:   ti, width: 80, height: 24, pendingEvery: 3 * time.Second,
		noticeFor: noticeFor,
	}
}

// Messages sent by the model's commands.
type (
	loadedMsg struct {
		status api.Status
		groups []api.Group
		peers  int
		err    error
	}
	logMsg struct {
		group string
		msgs  []api.Message
		limit int
		jump  string // message id to show once loaded
		err   error
	}
	groupsMsg struct {
		groups []api.Group
		sel    string // group id to switch to, if any
		err    error
	}
	sentMsg struct {
		line queuedLine // what was sent, kept if the daemon went away
		msg  api.Message
		err  error
	}
	searchMsg struct {
		query string
		res   api.SearchResult
		err   error
	}
	membersMsg struct {
		group   string
		members []api.Member
		err     error
	}
	inviteMsg struct {
		inv api.Invite
		err error
	}
	noticeMsg struct {
		text string
		err  error
	}
	leftMsg struct {
		group string
		err   error
	}
	peersMsg struct {
		n   int
		err error
	}
	changedMsg struct {
		notice string
		groups []api.Group
		err    error
	}
	pendingTickMsg   struct{}
	noticeExpiredMsg struct{ seq int }
)

// Init loads the device, its groups and peers.
func (m Model) Init() tea.Cmd {
	svc, ctx := m.svc, m.ctx
	return func() tea.Msg {
		st, err := svc.Status(ctx)
		if err != nil {
			return loadedMsg{err: err}
		}
		gs, err := svc.Groups(ctx)
		if err != nil {
			return loadedMsg{err: err}
		}
		return loadedMsg{status: st, groups: gs, peers: st.Peers}
	}
}

// Update applies one message to the model.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	nm, cmd := m.update(msg)
	mm := nm.(Model)
	if t := mm.pendingCmd(); t != nil {
		cmd = tea.Batch(cmd, t)
	}
	if t := mm.noticeCmd(); t != nil {
		cmd = tea.Batch(cmd, t)
	}
	return mm, cmd
}

// noticeCmd schedules the expiry of a notice just set: notices used to
// stay until the next one, so an old error looked current.
func (m *Model) noticeCmd() tea.Cmd {
	if m.notice == "" || m.noticeFor <= 0 || m.noticeArmed == m.noticeSeq || m.quitting {
		return nil
	}
	m.noticeArmed = m.noticeSeq
	d, seq := m.noticeFor, m.noticeSeq
	if m.noticeErr {
		d *= 2
	}
	return tea.Tick(d, func(time.Time) tea.Msg { return noticeExpiredMsg{seq: seq} })
}

// pendingCmd schedules a history reload while the current group shows an
// own message not yet published.
func (m *Model) pendingCmd() tea.Cmd {
	if m.pendingTick || m.pendingEvery <= 0 || m.quitting || !m.hasPending(m.cur) {
		return nil
	}
	m.pendingTick = true
	return tea.Tick(m.pendingEvery, func(time.Time) tea.Msg { return pendingTickMsg{} })
}

func (m *Model) hasPending(group string) bool {
	return m.pending[group] > 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (m Model) update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case pendingTickMsg:
		m.pendingTick = false
		if m.hasPending(m.cur) && !m.loading[m.cur] {
			return m, m.loadLog(m.cur, m.limit[m.cur], "")
		}
		return m, nil
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.clampScroll()
		return m, nil
	case tea.KeyPressMsg:
		return m.key(msg)
	case EventMsg:
		return m.event(api.Event(msg))
	case DisconnectedMsg:
		m.offline = m.offlineText()
		return m, nil
	case ReconnectedMsg:
		return m.reconnected(msg.Svc)
	case noticeExpiredMsg:
		if msg.seq == m.noticeSeq {
			m.notice, m.noticeErr = "", false
		}
		return m, nil
	case loadedMsg:
		if msg.err != nil {
			m.fail("loading", msg.err)
			return m, nil
		}
		m.loaded = true
		m.self, m.groups, m.peers = msg.status, msg.groups, msg.peers
		id := ""
		if len(m.groups) > 0 {
			id = m.groups[0].ID
		}
		if m.opts.Group != "" {
			if g, ok := m.findGroup(m.opts.Group); ok {
				id = g.ID
			} else {
				m.setNotice(fmt.Sprintf("no group %q", m.opts.Group), true)
			}
		}
		if id == "" {
			m.setNotice("no groups yet: /create NAME or /join CODE", false)
			return m, nil
		}
		return m, m.switchTo(id)
	case logMsg:
		return m.logLoaded(msg)
	case groupsMsg:
		if msg.err != nil {
			m.fail("groups", msg.err)
			return m, nil
		}
		m.mergeGroups(msg.groups)
		if msg.sel != "" {
			return m, m.switchTo(msg.sel)
		}
		if m.cur != "" && m.group(m.cur) == nil {
			m.cur = ""
			if len(m.groups) > 0 {
				return m, m.switchTo(m.groups[0].ID)
			}
		}
		return m, nil
	case sentMsg:
		if msg.err != nil && m.opts.Redial != nil && disconnected(msg.err) {
			// The daemon went away under the send: keep the line for
			// when it is back (first, if it was the oldest waiting).
			m.offline = m.offlineText()
			if m.flushing {
				m.queued = append([]queuedLine{msg.line}, m.queued...)
				m.flushing = false
				m.queue(queuedLine{})
			} else {
				m.queue(msg.line)
			}
			return m, nil
		}
		next := m.flushNext()
		if msg.err != nil {
			m.fail("send", msg.err)
			return m, next
		}
		m.addMessage(msg.msg)
		m.scroll, m.highlight = 0, ""
		return m, next
	case searchMsg:
		if msg.err != nil {
			m.fail("search", msg.err)
			return m, nil
		}
		m.pane, m.query, m.hits, m.hitSel = paneSearch, msg.query, msg.res.Hits, 0
		return m, nil
	case membersMsg:
		if msg.err != nil {
			m.fail("members", msg.err)
			return m, nil
		}
		m.members = msg.members
		m.showMembers(msg.group)
		return m, nil
	case inviteMsg:
		if msg.err != nil {
			m.fail("invite", msg.err)
			return m, nil
		}
		m.pane, m.infoTitle = paneInfo, "invite"
		code := clean(msg.inv.Code)
		m.infoCode = code
		m.info = []string{
			"One-time invite code for #" + m.groupName(msg.inv.Group) + ":", "",
			code, "",
			"Expires " + msg.inv.Expires.In(m.opts.Location).Format("Mon 2 Jan 15:04") + ". Copied to the clipboard",
			"where the terminal allows it (OSC 52). Or select its lines: the other",
			"device runs grove join - and pastes them (line breaks do not matter),",
			"or /join CODE in grove chat.", "",
			"Esc closes this pane.",
		}
		// A wrapped code copied off the screen would carry line breaks.
		return m, tea.SetClipboard(code)
	case changedMsg:
		m.setNotice(msg.notice, false)
		if msg.err == nil {
			m.mergeGroups(msg.groups)
		}
		return m, nil
	case noticeMsg:
		if msg.err != nil {
			m.fail(msg.text, msg.err)
		} else {
			m.setNotice(msg.text, false)
		}
		return m, nil
	case leftMsg:
		if msg.err != nil {
			m.fail("leave", msg.err)
			return m, nil
		}
		name := m.groupName(msg.group)
		m.dropGroup(msg.group)
		m.setNotice("left #"+name+"; its history is deleted from this device", false)
		if m.cur == "" && len(m.groups) > 0 {
			return m, m.switchTo(m.groups[0].ID)
		}
		return m, nil
	case peersMsg:
		if msg.err == nil {
			m.peers = msg.n
		}
		return m, nil
	}
	return m, nil
}

// key handles a key press.
func (m Model) key(k tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch k.String() {
	case "ctrl+c", "ctrl+d":
		m.quitting = true
		return m, tea.Quit
	case "esc":
		if m.editing != "" || m.replyTo != "" {
			m.endCompose()
			m.input.SetValue("")
			m.setNotice("", false)
			return m, nil
		}
		if m.pane != paneMessages {
			m.pane = paneMessages
		} else {
			m.input.SetValue("")
		}
		return m, nil
	case "tab", "ctrl+n":
		return m, m.cycle(1)
	case "shift+tab", "ctrl+p":
		return m, m.cycle(-1)
	case "pgup":
		return m, m.scrollBy(m.bodyHeight() - 1)
	case "pgdown":
		return m, m.scrollBy(-(m.bodyHeight() - 1))
	case "up":
		if m.pane == paneSearch {
			m.hitSel = max(0, m.hitSel-1)
			return m, nil
		}
		if m.pane == paneMessages && m.scroll == 0 && m.input.Value() == "" && m.editing == "" {
			if started, ok := m.startEdit(); ok {
				return started, nil
			}
		}
		return m, m.scrollBy(1)
	case "ctrl+r":
		return m.selectReply(), nil
	case "down":
		if m.pane == paneSearch {
			m.hitSel = min(len(m.hits)-1, m.hitSel+1)
			m.hitSel = max(0, m.hitSel)
			return m, nil
		}
		return m, m.scrollBy(-1)
	case "enter":
		text := m.input.Value()
		m.input.SetValue("")
		if strings.TrimSpace(text) == "" {
			if m.pane == paneSearch {
				return m, m.jump()
			}
			if m.editing != "" || m.replyTo != "" {
				m.endCompose()
				m.setNotice("nothing sent", false)
			}
			return m, nil
		}
		if strings.HasPrefix(text, "/") {
			m.endCompose()
			return m.command(text)
		}
		if m.editing != "" || m.replyTo != "" {
			return m.sendCompose(text)
		}
		return m, m.send(text)
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return m, cmd
}

// event applies one event of the daemon's stream.
func (m Model) event(ev api.Event) (tea.Model, tea.Cmd) {
	when := ev.Time
	if when.IsZero() {
		when = time.Now()
	}
	g := m.group(ev.Group)
	name := m.groupName(ev.Group)
	switch ev.Kind {
	case api.EventMessage, api.EventMessageUpdated:
		if ev.Message == nil {
			return m, nil
		}
		msg := *ev.Message
		if msg.Group == "" {
			msg.Group = ev.Group
		}
		before := 0
		if msg.Group == m.cur && m.scroll > 0 {
			before = len(m.timeline(m.cur, m.paneWidth()))
		}
		isNew := m.addMessage(msg)
		if g == nil {
			return m, m.refreshGroups("")
		}
		if isNew && !msg.Own && msg.Group != m.cur {
			g.Unread++
		}
		var read tea.Cmd
		if isNew && !msg.Own && msg.Group == m.cur {
			read = m.markRead(m.cur) // shown at once: read
		}
		if msg.Group == m.cur && m.scroll > 0 {
			// Keep the view still while the user reads older lines.
			m.scroll += len(m.timeline(m.cur, m.paneWidth())) - before
		}
		return m, read
	case api.EventMemberAdded, api.EventMemberRemoved:
		who := "someone"
		if ev.Member != nil && ev.Member.Name != "" {
			who = ev.Member.Name
		}
		verb := "joined"
		if ev.Kind == api.EventMemberRemoved {
			verb = "left or was removed"
		}
		if g != nil {
			if ev.Kind == api.EventMemberAdded {
				g.Members++
			} else if g.Members > 0 {
				g.Members--
			}
		}
		m.addNote(ev.Group, when, who+" "+verb)
		if m.pane == paneInfo && m.infoTitle == "members" && ev.Group == m.cur {
			return m, m.loadMembers(m.cur)
		}
	case api.EventRemoved:
		text := "this device was removed from #" + name
		if ev.Detail != "" {
			text = "#" + name + ": " + ev.Detail
		}
		m.addNote(ev.Group, when, text)
		m.setNotice(text, true)
		return m, m.refreshGroups("")
	case api.EventEpoch:
		if g != nil {
			g.Epoch = ev.Epoch
		}
		m.addNote(ev.Group, when, fmt.Sprintf("keys changed: epoch %d", ev.Epoch))
	case api.EventForkResolved:
		text := "concurrent changes settled"
		if ev.Detail != "" {
			text += ": " + ev.Detail
		}
		m.addNote(ev.Group, when, text)
		// Messages may now be marked orphaned or re-sent: reload what is shown.
		cmds := []tea.Cmd{m.refreshGroups("")}
		if _, ok := m.msgs[ev.Group]; ok {
			cmds = append(cmds, m.loadLog(ev.Group, m.limit[ev.Group], ""))
		}
		return m, tea.Batch(cmds...)
	case api.EventSync:
		if g != nil && ev.Sync != nil {
			g.Sync = *ev.Sync
		}
		if ev.Detail != "" {
			m.addNote(ev.Group, when, ev.Detail)
			m.setNotice("#"+name+": "+ev.Detail, true)
		}
	case api.EventGroupJoined:
		return m, m.refreshGroups("")
	case api.EventGroupChanged:
		// Admins or the name changed: the title and list show them.
		m.addNote(ev.Group, when, ev.Detail)
		return m, m.refreshGroups("")
	case api.EventTyping:
		m.typing(ev) // conv.go
	case api.EventPeers, api.EventReach:
		svc, ctx := m.svc, m.ctx
		// Groups too: their reachability follows the peers.
		return m, tea.Batch(m.refreshGroups(""), func() tea.Msg {
			ps, err := svc.Peers(ctx)
			return peersMsg{n: len(ps), err: err}
		})
	}
	return m, nil
}

// command runs a slash command typed in the input line.
func (m Model) command(line string) (tea.Model, tea.Cmd) {
	name, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	svc, ctx, cur := m.svc, m.ctx, m.cur
	needGroup := func() bool {
		if cur == "" {
			m.setNotice(name+": no group selected (/group NAME)", true)
			return false
		}
		return true
	}
	needArg := func(usage string) bool {
		if arg == "" {
			m.setNotice("usage: "+usage, true)
			return false
		}
		return true
	}
	switch name {
	case "/help":
		m.showHelp()
		return m, nil
	case "/quit", "/exit":
		m.quitting = true
		return m, tea.Quit
	case "/invite":
		if !needGroup() {
			return m, nil
		}
		return m, func() tea.Msg {
			inv, err := svc.Invite(ctx, cur)
			return inviteMsg{inv: inv, err: err}
		}
	case "/members":
		if !needGroup() {
			return m, nil
		}
		return m, m.loadMembers(cur)
	case "/remove":
		if !needGroup() || !needArg("/remove NAME") {
			return m, nil
		}
		gname := m.groupName(cur)
		return m, func() tea.Msg {
			if err := svc.Remove(ctx, cur, arg); err != nil {
				return noticeMsg{text: "remove " + arg, err: err}
			}
			return noticeMsg{text: "removed " + arg + " from #" + gname}
		}
	case "/promote", "/demote", "/rename", "/mute", "/unmute":
		if !needGroup() {
			return m, nil
		}
		req := api.ChangeRequest{Group: cur, Kind: api.ChangeKind(strings.TrimPrefix(name, "/"))}
		switch name {
		case "/promote", "/demote":
			if !needArg(name + " NAME") {
				return m, nil
			}
			req.Member = arg
		case "/rename":
			if !needArg("/rename NEWNAME") {
				return m, nil
			}
			req.Name = arg
		}
		gname, verb := m.groupName(cur), strings.TrimPrefix(name, "/")
		return m, func() tea.Msg {
			ch, err := svc.RequestChange(ctx, req)
			if err != nil {
				return noticeMsg{text: verb, err: err}
			}
			text := verb + "d #" + gname // promoted, demoted, renamed, muted, unmuted
			if ch.State != api.ChangeDone {
				text = verb + " requested in #" + gname + ": every member's device applies it shortly"
			}
			gs, err := svc.Groups(ctx)
			return changedMsg{notice: text, groups: gs, err: err}
		}
	case "/rotate":
		if !needGroup() {
			return m, nil
		}
		gname := m.groupName(cur)
		return m, func() tea.Msg {
			if err := svc.Rotate(ctx, cur); err != nil {
				return noticeMsg{text: "rotate", err: err}
			}
			return noticeMsg{text: "rotated your keys in #" + gname}
		}
	case "/leave":
		if !needGroup() {
			return m, nil
		}
		return m, func() tea.Msg {
			return leftMsg{group: cur, err: svc.Leave(ctx, cur)}
		}
	case "/search":
		if !needArg("/search QUERY") {
			return m, nil
		}
		return m, func() tea.Msg {
			res, err := svc.Search(ctx, api.SearchRequest{Query: arg, Limit: 50})
			return searchMsg{query: arg, res: res, err: err}
		}
	case "/join":
		if !needArg("/join CODE") {
			return m, nil
		}
		m.setNotice("joining: waiting for the inviter's device to welcome this one…", false)
		return m, func() tea.Msg {
			// As `grove join`: the inviter's device must answer in time.
			ctx, cancel := context.WithTimeout(ctx, joinTimeout)
			defer cancel()
			g, err := svc.Join(ctx, arg)
			if err != nil {
				return noticeMsg{text: "join", err: err}
			}
			gs, err := svc.Groups(ctx)
			return groupsMsg{groups: gs, sel: g.ID, err: err}
		}
	case "/group":
		if !needArg("/group NAME") {
			return m, nil
		}
		g, ok := m.findGroup(arg)
		if !ok {
			m.setNotice(fmt.Sprintf("no group %q (/create NAME makes one)", arg), true)
			return m, nil
		}
		return m, m.switchTo(g.ID)
	case "/create":
		if !needArg("/create NAME") {
			return m, nil
		}
		return m, func() tea.Msg {
			g, err := svc.CreateGroup(ctx, arg)
			if err != nil {
				return noticeMsg{text: "create", err: err}
			}
			gs, err := svc.Groups(ctx)
			return groupsMsg{groups: gs, sel: g.ID, err: err}
		}
	}
	if mm, cmd, ok := m.convCommand(name, arg); ok { // conv.go
		return mm, cmd
	}
	m.setNotice("unknown command "+name+" (/help lists them)", true)
	return m, nil
}

func (m *Model) send(text string) tea.Cmd {
	if m.cur == "" {
		m.setNotice("no group selected: /group NAME, /create NAME or /join CODE", true)
		return nil
	}
	line := queuedLine{group: m.cur, text: text}
	if m.offline != "" && m.opts.Redial != nil {
		m.queue(line)
		return nil
	}
	return sendCmd(m.svc, m.ctx, line)
}

// queuedLine is a line typed for a group, waiting for the daemon.
type queuedLine struct{ group, text string }

func sendCmd(svc api.Service, ctx context.Context, l queuedLine) tea.Cmd {
	return func() tea.Msg {
		msg, err := svc.Send(ctx, l.group, l.text)
		return sentMsg{line: l, msg: msg, err: err}
	}
}

// flushNext sends the next waiting line while flushing.
func (m *Model) flushNext() tea.Cmd {
	if !m.flushing {
		return nil
	}
	if len(m.queued) == 0 {
		m.flushing = false
		return nil
	}
	l := m.queued[0]
	m.queued = m.queued[1:]
	return sendCmd(m.svc, m.ctx, l)
}

// queue keeps a line until the daemon is back (a zero line only updates
// the notice).
func (m *Model) queue(l queuedLine) {
	if l != (queuedLine{}) {
		m.queued = append(m.queued, l)
	}
	n := len(m.queued)
	m.setNotice(fmt.Sprintf("%d %s waiting: sent once the daemon is back", n, plural(n, "message", "messages")), false)
}

// reconnected carries on over svc, Run's new connection to the daemon:
// the groups and the current history are read again (what arrived
// meanwhile), and the lines typed meanwhile are sent, in order.
func (m Model) reconnected(svc api.Service) (tea.Model, tea.Cmd) {
	m.svc, m.offline = svc, ""
	m.setNotice("reconnected to the daemon", false)
	cmds := []tea.Cmd{m.refreshGroups("")}
	if m.cur != "" {
		cmds = append(cmds, m.loadLog(m.cur, m.limit[m.cur], ""))
	}
	if !m.flushing && len(m.queued) > 0 {
		m.flushing = true
		cmds = append(cmds, m.flushNext())
	}
	return m, tea.Batch(cmds...)
}

// disconnected reports whether err means the connection to the daemon is
// gone (the client reports it as CodeUnavailable from its own side).
func disconnected(err error) bool {
	var e *api.Error
	return errors.Is(err, api.ErrDaemonNotRunning) ||
		errors.As(err, &e) && e.Code == api.CodeUnavailable && strings.HasPrefix(e.Message, "api: ")
}

// offlineText is the status bar's text while the daemon is unreachable.
func (m *Model) offlineText() string {
	if m.opts.Redial != nil {
		return redialText
	}
	return offlineText
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// switchTo makes group id current and loads its history if needed.
func (m *Model) switchTo(id string) tea.Cmd {
	m.cur, m.scroll, m.highlight, m.pane = id, 0, "", paneMessages
	m.editing, m.replyTo = "", ""
	if g := m.group(id); g != nil {
		g.Unread = 0
	}
	if _, ok := m.msgs[id]; ok || m.loading[id] {
		return m.markRead(id)
	}
	return tea.Batch(m.markRead(id), m.loadLog(id, pageSize, ""))
}

// markRead tells the daemon that the user has seen group id, so that its
// unread count (shown by grove group list too) restarts from zero. A
// failure only leaves the count high; it is not worth interrupting the
// user for.
func (m *Model) markRead(id string) tea.Cmd {
	svc, ctx := m.svc, m.ctx
	return func() tea.Msg {
		svc.MarkRead(ctx, id)
		return nil
	}
}

func (m *Model) cycle(d int) tea.Cmd {
	if len(m.groups) == 0 {
		return nil
	}
	i := slices.IndexFunc(m.groups, func(g api.Group) bool { return g.ID == m.cur })
	i = ((i+d)%len(m.groups) + len(m.groups)) % len(m.groups)
	return m.switchTo(m.groups[i].ID)
}

// scrollBy scrolls up by n lines (down if negative) and asks for older
// history when the top of what is loaded comes into view.
func (m *Model) scrollBy(n int) tea.Cmd {
	if m.pane == paneSearch || m.cur == "" {
		return nil
	}
	m.pane = paneMessages
	m.scroll = max(0, m.scroll+n)
	m.clampScroll()
	total := len(m.timeline(m.cur, m.paneWidth()))
	if n > 0 && m.scroll+m.bodyHeight() >= total && !m.full[m.cur] && !m.loading[m.cur] {
		return m.loadLog(m.cur, min(m.limit[m.cur]+pageSize, maxHistory), "")
	}
	return nil
}

func (m *Model) clampScroll() {
	if m.cur == "" {
		m.scroll = 0
		return
	}
	total := len(m.timeline(m.cur, m.paneWidth()))
	m.scroll = max(0, min(m.scroll, total-m.bodyHeight()))
}

func (m *Model) loadLog(group string, limit int, jump string) tea.Cmd {
	if limit <= 0 {
		limit = pageSize
	}
	m.loading[group] = true
	svc, ctx := m.svc, m.ctx
	return func() tea.Msg {
		ms, err := svc.Log(ctx, group, limit)
		return logMsg{group: group, msgs: ms, limit: limit, jump: jump, err: err}
	}
}

func (m Model) logLoaded(msg logMsg) (tea.Model, tea.Cmd) {
	delete(m.loading, msg.group)
	if msg.err != nil {
		m.fail("history", msg.err)
		return m, nil
	}
	before := len(m.timeline(msg.group, m.paneWidth()))
	// Keep messages that arrived by event after the Log call was answered.
	old := m.msgs[msg.group]
	m.msgs[msg.group] = nil
	delete(m.ids, msg.group)
	delete(m.pending, msg.group)
	for _, x := range msg.msgs {
		m.addMessage(x)
	}
	for _, x := range old {
		if len(msg.msgs) == 0 || x.Time.After(msg.msgs[len(msg.msgs)-1].Time) {
			m.addMessage(x)
		}
	}
	m.limit[msg.group] = msg.limit
	m.full[msg.group] = len(msg.msgs) < msg.limit || msg.limit >= maxHistory
	m.version[msg.group]++
	if msg.group == m.cur && m.scroll > 0 {
		// Older lines were added above: keep the same lines in view.
		m.scroll += len(m.timeline(msg.group, m.paneWidth())) - before
	}
	if msg.jump != "" {
		if slices.ContainsFunc(m.msgs[msg.group], func(x api.Message) bool { return x.ID == msg.jump }) {
			m.showMessage(msg.group, msg.jump)
			return m, nil
		}
		if !m.full[msg.group] {
			return m, m.loadLog(msg.group, min(msg.limit*4, maxHistory), msg.jump)
		}
		m.setNotice("that message is no longer in this device's history", true)
	}
	m.clampScroll()
	return m, nil
}

// jump shows the selected search hit in its group.
func (m *Model) jump() tea.Cmd {
	if m.hitSel < 0 || m.hitSel >= len(m.hits) {
		return nil
	}
	hit := m.hits[m.hitSel].Message
	if m.group(hit.Group) == nil {
		m.setNotice("that message's group is gone", true)
		return nil
	}
	cmd := m.switchTo(hit.Group)
	m.highlight = hit.ID
	if slices.ContainsFunc(m.msgs[hit.Group], func(x api.Message) bool { return x.ID == hit.ID }) {
		m.showMessage(hit.Group, hit.ID)
		return cmd
	}
	limit := max(m.limit[hit.Group]*4, pageSize)
	if m.full[hit.Group] {
		m.setNotice("that message is no longer in this device's history", true)
		return nil
	}
	return m.loadLog(hit.Group, min(limit, maxHistory), hit.ID)
}

// showMessage scrolls so that message id of group is in the middle of the
// pane and highlights it.
func (m *Model) showMessage(group, id string) {
	m.cur, m.pane, m.highlight = group, paneMessages, id
	lines := m.timeline(group, m.paneWidth())
	idx := slices.IndexFunc(lines, func(l line) bool { return l.msgID == id })
	if idx < 0 {
		return
	}
	m.scroll = len(lines) - idx - m.bodyHeight()/2
	m.clampScroll()
}

// addMessage adds or replaces (by id) a message; it reports whether the
// message was new.
func (m *Model) addMessage(msg api.Message) bool {
	ms := m.msgs[msg.Group]
	ids := m.ids[msg.Group]
	if ids == nil {
		ids = map[string]bool{}
		m.ids[msg.Group] = ids
	}
	if ids[msg.ID] {
		if i := slices.IndexFunc(ms, func(x api.Message) bool { return x.ID == msg.ID }); i >= 0 {
			m.pending[msg.Group] += b2i(msg.Pending) - b2i(ms[i].Pending)
			ms[i] = msg
		}
		m.version[msg.Group]++
		return false
	}
	ids[msg.ID] = true
	m.pending[msg.Group] += b2i(msg.Pending)
	// Usually the newest; keep time order when one arrives late.
	i := len(ms)
	for i > 0 && ms[i-1].Time.After(msg.Time) {
		i--
	}
	m.msgs[msg.Group] = slices.Insert(ms, i, msg)
	if i == len(ms) && len(ms) > 0 {
		m.appendRendered(msg.Group, msg.Time, func(width int) []line { return m.messageLines(msg, width) })
	} else {
		m.version[msg.Group]++
	}
	return true
}

func (m *Model) addNote(group string, t time.Time, text string) {
	if group == "" {
		return
	}
	n := note{time: t, text: text}
	m.notes[group] = append(m.notes[group], n)
	m.appendRendered(group, t, func(width int) []line { return m.noteLines(n, width) })
}

// appendRendered extends group's cached timeline by one entry at time t
// when the cache is current and t is not older than its last entry, so
// that a new message costs its own lines, not the whole history's;
// otherwise it invalidates the cache.
func (m *Model) appendRendered(group string, t time.Time, render func(width int) []line) {
	c := m.tl[group]
	if c == nil || c.version != m.version[group] || c.highlight != m.highlight || t.Before(c.lastTime) {
		m.version[group]++
		return
	}
	if d := m.dayOf(t); d != c.lastDay {
		c.lastDay = d
		c.lines = append(c.lines, m.dayLine(d, c.width))
	}
	c.lines = append(c.lines, render(c.width)...)
	c.lastTime = t
	m.version[group]++
	c.version = m.version[group]
}

func (m *Model) refreshGroups(sel string) tea.Cmd {
	svc, ctx := m.svc, m.ctx
	return func() tea.Msg {
		gs, err := svc.Groups(ctx)
		return groupsMsg{groups: gs, sel: sel, err: err}
	}
}

// mergeGroups takes the daemon's group list. The daemon's unread counts
// are authoritative (this UI marks a group read when it shows it), except
// for the group on screen, which is being read.
func (m *Model) mergeGroups(gs []api.Group) {
	for i := range gs {
		if gs[i].ID == m.cur {
			gs[i].Unread = 0
		}
	}
	m.groups = gs
}

func (m *Model) dropGroup(id string) {
	m.groups = slices.DeleteFunc(m.groups, func(g api.Group) bool { return g.ID == id })
	delete(m.msgs, id)
	delete(m.notes, id)
	delete(m.limit, id)
	delete(m.full, id)
	delete(m.tl, id)
	delete(m.ids, id)
	delete(m.pending, id)
	m.version[id]++
	if m.cur == id {
		m.cur, m.scroll, m.pane = "", 0, paneMessages
	}
}

func (m *Model) loadMembers(group string) tea.Cmd {
	svc, ctx := m.svc, m.ctx
	return func() tea.Msg {
		ms, err := svc.Members(ctx, group)
		return membersMsg{group: group, members: ms, err: err}
	}
}

func (m *Model) showMembers(group string) {
	m.pane, m.infoTitle = paneInfo, "members"
	m.info = []string{fmt.Sprintf("#%s: %d %s. Compare fingerprints out of band.", m.groupName(group), len(m.members), plural(len(m.members), "member", "members")), ""}
	for _, mb := range m.members {
		tags := ""
		if mb.Admin {
			tags += " [admin]"
		}
		if mb.Self {
			tags += " [you]"
		}
		m.info = append(m.info, clean(mb.Name)+tags, "    "+clean(mb.Fingerprint))
	}
	m.info = append(m.info, "", "Esc closes this pane.")
}

func (m *Model) showHelp() {
	m.pane, m.infoTitle = paneInfo, "help"
	// One column of at most 58 characters: fits the pane at 80x24.
	m.info = []string{
		"Enter sends the line to the current group.",
		"/group NAME    switch group     /create NAME  new group",
		"/invite        invite code      /join CODE    join one",
		"/members       fingerprints     /remove NAME  remove one",
		"/rotate        update your keys /leave        leave group",
		"/promote NAME  make admin       /demote NAME  take it back",
		"/rename NAME   rename group     /mute /unmute no alerts",
		"/search QUERY  search; Enter jumps to the selected hit",
		"/reply TEXT    reply to newest  /react EMOJI  react",
		"/edit TEXT     edit your newest /delete       delete it",
		"/file PATH     send a file      /save PATH    save file",
		"/help /quit    this help; quit (or Ctrl-C)",
		"",
		"Tab Shift-Tab  next, previous group",
		"PgUp PgDn      scroll; older history loads at the top",
		"Up, Ctrl-R     edit your last; reply (again: older one)",
		"Esc            close pane; cancel an edit or a reply",
		"Marks: > yours  ~ orphaned (fork)  * re-sent  ... sending",
		"A ~ after a group's unread count: muted.",
	}
}

func (m *Model) setNotice(text string, isErr bool) {
	m.notice, m.noticeErr = clean(text), isErr
	m.noticeSeq++
}

// fail shows err; a lost connection to the daemon also marks the UI
// offline.
func (m *Model) fail(what string, err error) {
	if disconnected(err) {
		m.offline = m.offlineText()
	}
	m.setNotice(what+": "+oneLine(err.Error()), true)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (m *Model) group(id string) *api.Group {
	for i := range m.groups {
		if m.groups[i].ID == id {
			return &m.groups[i]
		}
	}
	return nil
}

func (m *Model) findGroup(ref string) (api.Group, bool) {
	for _, g := range m.groups {
		if g.ID == ref || g.Name == ref || "#"+g.Name == ref {
			return g, true
		}
	}
	return api.Group{}, false
}

func (m *Model) groupName(id string) string {
	if g := m.group(id); g != nil {
		return clean(g.Name)
	}
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
