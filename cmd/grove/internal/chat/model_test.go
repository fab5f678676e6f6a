package chat

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"grove/node/api"
	"grove/node/api/apitest"
)

// harness drives a Model the way bubbletea does, but synchronously: every
// command runs to completion and its message is fed back into Update, and
// the Fake's events are fed in as EventMsg when the test pumps them.
type harness struct {
	t      *testing.T
	f      *apitest.Fake
	m      Model
	events <-chan api.Event
	quit   bool
}

func newHarness(t *testing.T, f *apitest.Fake, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	events, err := f.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	return newHarnessFor(ctx, t, f, f, opts, events)
}

// newHarnessFor drives a model over svc while pumping f's events.
func newHarnessFor(ctx context.Context, t *testing.T, f *apitest.Fake, svc api.Service, opts Options, events <-chan api.Event) *harness {
	t.Helper()
	h := &harness{t: t, f: f, m: New(ctx, svc, opts), events: events}
	// Off by default: the harness runs commands synchronously, and a
	// timer would stall it. TestPendingRefresh turns it on.
	h.m.pendingEvery = 0
	h.m.noticeFor = 0
	h.update(tea.WindowSizeMsg{Width: 80, Height: 24})
	h.run(h.m.Init())
	h.pump()
	return h
}

func (h *harness) update(msg tea.Msg) {
	nm, cmd := h.m.Update(msg)
	h.m = nm.(Model)
	h.run(cmd)
}

func (h *harness) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	switch msg := cmd().(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			h.run(c)
		}
	case tea.QuitMsg:
		h.quit = true
	default:
		h.update(msg)
	}
}

// pump feeds every event the Fake has emitted so far into the model.
func (h *harness) pump() {
	for {
		select {
		case ev := <-h.events:
			h.update(EventMsg(ev))
		default:
			return
		}
	}
}

func (h *harness) key(code rune) { h.update(tea.KeyPressMsg{Code: code}) }

// enter types line and presses Enter, then delivers the resulting events.
func (h *harness) enter(line string) {
	for _, r := range line {
		h.update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	h.key(tea.KeyEnter)
	h.pump()
}

func (h *harness) screen() string { return ansi.Strip(h.m.screen()) }

// checkLayout asserts the screen is exactly the terminal's size.
func (h *harness) checkLayout() {
	h.t.Helper()
	lines := strings.Split(h.m.screen(), "\n")
	if len(lines) != h.m.height {
		h.t.Fatalf("screen has %d lines, want %d:\n%s", len(lines), h.m.height, h.screen())
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > h.m.width {
			h.t.Fatalf("line %d is %d wide, terminal %d: %q", i, w, h.m.width, ansi.Strip(l))
		}
	}
}

func (h *harness) contains(want ...string) {
	h.t.Helper()
	s := h.screen()
	for _, w := range want {
		if !strings.Contains(s, w) {
			h.t.Fatalf("screen lacks %q:\n%s", w, s)
		}
	}
}

func (h *harness) lacks(bad ...string) {
	h.t.Helper()
	s := h.screen()
	for _, b := range bad {
		if strings.Contains(s, b) {
			h.t.Fatalf("screen has %q:\n%s", b, s)
		}
	}
}

// fakeWith returns a Fake of alice with groups "general" (members bob,
// carol) and "random", and a message from bob in each.
func fakeWith(t *testing.T) *apitest.Fake {
	t.Helper()
	f := apitest.New("alice")
	ctx := context.Background()
	for _, g := range []string{"general", "random"} {
		if _, err := f.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	must(t, f.AddMember("general", "bob", false))
	must(t, f.AddMember("general", "carol", false))
	must(t, f.Receive("general", "bob", "hello from bob"))
	must(t, f.Receive("random", "bob", "random thought"))
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) cur() *api.Group { return h.m.group(h.m.cur) }

func TestInitialScreen(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	h.checkLayout()
	h.contains("#general", "#random", "bob: hello from bob", "Fri 2 Jan 2026", "peers 0", "epoch 0", "up to date", "alice", "3 members")
	if h.cur().Name != "general" {
		t.Fatalf("current group %q, want the first", h.cur().Name)
	}
	h.lacks("random thought") // another group's message
}

func TestOpenNamedGroup(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{Group: "random"})
	h.contains("random thought")
	h2 := newHarness(t, fakeWith(t), Options{Group: "nope"})
	h2.contains(`no group "nope"`)
}

func TestNoGroupsAndNoGroupSelected(t *testing.T) {
	h := newHarness(t, apitest.New("alice"), Options{})
	h.contains("No group selected", "/create NAME")
	h.enter("hello")
	h.contains("no group selected")
	h.enter("/invite")
	h.contains("/invite: no group selected")
}

func TestSendShowsOwnMessageOnce(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	h.enter("hi all")
	if n := strings.Count(h.screen(), "alice: hi all"); n != 1 {
		t.Fatalf("own message shown %d times:\n%s", n, h.screen())
	}
	h.contains("> alice: hi all")
	if h.m.input.Value() != "" {
		t.Fatalf("input not cleared: %q", h.m.input.Value())
	}
	log, _ := h.f.Log(context.Background(), "general", 0)
	if got := log[len(log)-1]; got.Text != "hi all" || !got.Own {
		t.Fatalf("daemon got %+v", got)
	}
}

func TestSendErrorShown(t *testing.T) {
	f := fakeWith(t)
	f.SetError("Send", api.Errorf(api.CodeConflict, "branch lost beyond the window"))
	h := newHarness(t, f, Options{})
	h.enter("doomed")
	h.contains("! send: branch lost beyond the window")
	h.lacks("alice: doomed")
}

func TestIncomingMessageUnreadAndSwitch(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	must(t, f.Receive("random", "carol", "one"))
	must(t, f.Receive("random", "carol", "two"))
	must(t, f.Receive("general", "carol", "here"))
	h.pump()
	// The daemon's count: "random thought" (received before the UI
	// started) and the two new ones.
	h.contains("carol: here", "#random          3")
	h.lacks("carol: one")
	h.key(tea.KeyTab)
	h.contains("carol: one", "carol: two")
	if h.cur().Name != "random" || h.cur().Unread != 0 {
		t.Fatalf("after tab: %+v", h.cur())
	}
	h.lacks("#random          3")
	if gs, _ := f.Groups(context.Background()); gs[1].Name != "random" || gs[1].Unread != 0 {
		t.Fatalf("switching to #random did not mark it read in the daemon: %+v", gs)
	}
	h.update(tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift})
	if h.cur().Name != "general" {
		t.Fatalf("shift+tab went to %q", h.cur().Name)
	}
}

func TestWrapDaysAndMarks(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	gid := h.m.cur
	day2 := apitest.Epoch0.Add(26 * time.Hour)
	long := strings.Repeat("lorem ipsum ", 20) + strings.Repeat("x", 90)
	for _, m := range []api.Message{
		{ID: "m1", Sender: "bob", Text: long, Time: day2},
		{ID: "m2", Sender: "carol", Text: "from a lost branch", Time: day2.Add(time.Second), Orphaned: true},
		{ID: "m3", Sender: "carol", Text: "sent again", Time: day2.Add(2 * time.Second), Resent: true},
		{ID: "m4", Sender: "alice", Text: "on its way", Time: day2.Add(3 * time.Second), Own: true, Pending: true},
	} {
		m.Group = gid
		h.update(EventMsg(api.Event{Kind: api.EventMessage, Group: gid, Message: &m}))
	}
	h.checkLayout()
	h.contains("Fri 2 Jan 2026", "Sat 3 Jan 2026", "~ carol: from a lost branch", "* carol: sent again", "> alice: on its way ...")
	// The long message wraps: every line fits the pane, continuation lines
	// are indented under the text, and no character is lost.
	var got strings.Builder
	for _, l := range h.m.timeline(gid, h.m.paneWidth()) {
		if l.msgID != "m1" {
			continue
		}
		s := ansi.Strip(l.text)
		if w := ansi.StringWidth(s); w > h.m.paneWidth() {
			t.Fatalf("wrapped line %d wide > %d", w, h.m.paneWidth())
		}
		if got.Len() > 0 && !strings.HasPrefix(s, strings.Repeat(" ", markWidth)) {
			t.Fatalf("continuation not indented: %q", s)
		}
		got.WriteString(s[min(len(s), markWidth):])
	}
	if !strings.Contains(strings.ReplaceAll(got.String(), " ", ""), strings.ReplaceAll(long, " ", "")) {
		t.Fatalf("wrapped text lost characters: %q", got.String())
	}
	// An update of a known message (pending -> published) replaces it.
	pub := api.Message{ID: "m4", Group: gid, Sender: "alice", Text: "on its way", Time: day2.Add(3 * time.Second), Own: true}
	h.update(EventMsg(api.Event{Kind: api.EventMessage, Group: gid, Message: &pub}))
	h.contains("> alice: on its way")
	h.lacks("on its way ...")
}

func TestHostileTextIsNeutralised(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{NoColor: true})
	gid := h.m.cur
	evil := api.Message{ID: "e", Group: gid, Sender: "mal\x1b[2Jlory", Text: "\x1b]0;pwned\x07 \u202eevil\x9b31m\nsecond line", Time: apitest.Epoch0}
	h.update(EventMsg(api.Event{Kind: api.EventMessage, Group: gid, Message: &evil}))
	raw := h.m.screen()
	for _, bad := range []string{"\x1b]", "\x1b[2J", "\x07", "\u202e", "\x9b"} {
		if strings.Contains(raw, bad) {
			t.Fatalf("screen contains %q", bad)
		}
	}
	h.contains("mal\uFFFD[2Jlory: \uFFFD]0;pwned\uFFFD \uFFFDevil\uFFFD31m", "second line")
	h.checkLayout()
}

func TestCommandHelp(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	h.enter("/help")
	h.contains("/search QUERY", "/remove NAME", "/join CODE", "/group NAME", "/rotate", "/leave", "/members", "/invite", "Marks:")
	// At 80x24 the help fits the pane unwrapped.
	if len(h.m.info)+1 > h.m.bodyHeight() {
		t.Fatalf("help has %d lines, pane %d", len(h.m.info)+1, h.m.bodyHeight())
	}
	for _, l := range h.m.info {
		if ansi.StringWidth(l) > h.m.paneWidth()-1 {
			t.Fatalf("help line wraps at 80 columns: %q", l)
		}
	}
	h.checkLayout()
	h.key(tea.KeyEscape)
	h.contains("bob: hello from bob")
}

func TestCommandInvite(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	h.enter("/invite")
	h.contains("grove1-general-", "One-time invite code for #general")
	// The code also goes to the clipboard (OSC 52), unwrapped.
	_, cmd := h.m.Update(inviteMsg{inv: api.Invite{Code: "grove1-long-code", Group: h.m.cur}})
	if cmd == nil {
		t.Fatal("no clipboard command for an invite")
	}
	if got := cmd(); fmt.Sprint(got) != "grove1-long-code" || !strings.Contains(fmt.Sprintf("%T", got), "Clipboard") {
		t.Fatalf("invite command gave %T %v", got, got)
	}
	must(t, f.SetAdmin("general", false))
	h.key(tea.KeyEscape)
	h.enter("/invite")
	h.contains("! invite: only admins may invite")
}

func TestCommandMembers(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	h.enter("/members")
	h.contains("3 members", "alice [admin] [you]", apitest.Fingerprint("alice"), "bob", apitest.Fingerprint("bob"), "carol", apitest.Fingerprint("carol"))
	// The open members pane follows member changes.
	must(t, f.AddMember("general", "dave", false))
	h.pump()
	h.contains("4 members", apitest.Fingerprint("dave"))
}

func TestCommandRemove(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	h.enter("/remove")
	h.contains("usage: /remove NAME")
	h.enter("/remove bob")
	h.contains("removed bob from #general", "bob left or was removed", "2 members")
	ms, _ := f.Members(context.Background(), "general")
	if len(ms) != 2 {
		t.Fatalf("daemon has %d members", len(ms))
	}
	h.enter("/remove zed")
	h.contains(`! remove zed: no member "zed" in general`)
}

func TestCommandRotate(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	h.enter("/rotate")
	h.contains("rotated your keys in #general", "keys changed: epoch 1", "epoch 1 ·")
	if h.cur().Epoch != 1 {
		t.Fatalf("epoch %d", h.cur().Epoch)
	}
}

func TestCommandLeave(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	h.enter("/leave")
	h.contains("left #general", "random thought")
	h.lacks("#general ")
	gs, _ := f.Groups(context.Background())
	if len(gs) != 1 || gs[0].Name != "random" {
		t.Fatalf("daemon groups %+v", gs)
	}
	h.enter("/leave")
	h.contains("No group selected")
	h.enter("/leave")
	h.contains("/leave: no group selected")
}

func TestCommandSearchAndJump(t *testing.T) {
	f := fakeWith(t)
	for i := range 300 {
		must(t, f.Receive("random", "carol", fmt.Sprintf("filler %d", i)))
	}
	h := newHarness(t, f, Options{})
	h.enter("/search")
	h.contains("usage: /search QUERY")
	h.enter("/search random")
	h.contains(`search "random": 1 hit ·`, "#random", "bob: random thought")
	h.key(tea.KeyDown) // stays on the only hit
	h.key(tea.KeyEnter)
	if h.cur().Name != "random" || h.m.pane != paneMessages {
		t.Fatalf("jump went to %q pane %d", h.cur().Name, h.m.pane)
	}
	// "random thought" is the oldest of 301 messages: jumping loaded more
	// history until it was there, and scrolled to it.
	h.contains("bob: random thought")
	if h.m.highlight == "" || len(h.m.msgs[h.m.cur]) != 301 {
		t.Fatalf("highlight %q, %d messages loaded", h.m.highlight, len(h.m.msgs[h.m.cur]))
	}
	h.checkLayout()
	h.enter("/search nothingmatches")
	h.contains("0 hits", "nothing found")
	h.key(tea.KeyEscape)
	h.lacks("nothing found")
}

func TestSearchSelection(t *testing.T) {
	f := fakeWith(t)
	must(t, f.Receive("general", "carol", "apple one"))
	must(t, f.Receive("general", "carol", "apple two"))
	h := newHarness(t, f, Options{})
	h.enter("/search apple")
	h.contains("▶ #general", "apple one")
	h.key(tea.KeyDown)
	h.key(tea.KeyEnter)
	want := h.m.hits[1].Message.ID
	if h.m.highlight != want {
		t.Fatalf("highlight %q, want second hit %q", h.m.highlight, want)
	}
	h.key(tea.KeyUp)
	if h.m.scroll < 0 {
		t.Fatal("negative scroll")
	}
}

func TestCommandJoin(t *testing.T) {
	f := fakeWith(t)
	f.AddJoinable("grove1-code", "secret")
	h := newHarness(t, f, Options{})
	h.enter("/join")
	h.contains("usage: /join CODE")
	h.enter("/join grove1-code")
	if h.cur().Name != "secret" {
		t.Fatalf("after join current is %q", h.cur().Name)
	}
	h.contains("#secret", "2 members")
	h.enter("/join grove1-code")
	h.contains("! join: invalid or used invite code")
}

func TestCommandGroupAndCreate(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	h.enter("/group random")
	h.contains("random thought")
	h.enter("/group #general")
	h.contains("hello from bob")
	h.enter("/group nope")
	h.contains(`no group "nope"`)
	h.enter("/group")
	h.contains("usage: /group NAME")
	h.enter("/create ops")
	if h.cur().Name != "ops" {
		t.Fatalf("after create current is %q", h.cur().Name)
	}
	h.enter("/create ops")
	h.contains(`! create: a group named "ops" exists`)
}

func TestUnknownCommandAndQuit(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	h.enter("/frobnicate")
	h.contains("unknown command /frobnicate")
	if h.quit {
		t.Fatal("quit early")
	}
	h.enter("/quit")
	if !h.quit {
		t.Fatal("/quit did not quit")
	}
	h2 := newHarness(t, fakeWith(t), Options{})
	h2.update(tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl})
	if !h2.quit {
		t.Fatal("ctrl+c did not quit")
	}
}

func TestEventMemberAddedRemoved(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	must(t, f.AddMember("general", "dave", false))
	h.pump()
	h.contains("dave joined", "4 members")
	must(t, f.Remove(context.Background(), "general", "dave"))
	h.pump()
	h.contains("dave left or was removed", "3 members")
}

func TestEventRemovedFromGroup(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	h.update(EventMsg(api.Event{Kind: api.EventRemoved, Group: h.m.cur, Time: apitest.Epoch0, Detail: "this device was removed from the group"}))
	h.contains("! #general: this device was removed from the group")
}

func TestEventEpochAndFork(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	gid := h.m.cur
	h.update(EventMsg(api.Event{Kind: api.EventEpoch, Group: gid, Epoch: 7, Time: apitest.Epoch0.Add(time.Hour)}))
	h.contains("keys changed: epoch 7", "epoch 7 ·")
	// A fork settlement is noted and the history reloaded, so that marks
	// set by the daemon (orphaned, re-sent) show.
	must(t, f.Receive("general", "carol", "arrived during the fork"))
	h.update(EventMsg(api.Event{Kind: api.EventForkResolved, Group: gid, Time: apitest.Epoch0.Add(2 * time.Hour), Detail: "1 epoch(s) undone by a concurrent commit"}))
	h.contains("concurrent changes settled: 1 epoch(s) undone")
	for len(h.events) > 0 {
		<-h.events // the message event: the reload alone must show it
	}
	h.contains("carol: arrived during the fork")
	// The reload took the daemon's epoch (the fake's, 0) over the event's.
	if h.cur().Epoch != 0 {
		t.Fatalf("epoch %d after reload", h.cur().Epoch)
	}
}

func TestEventSyncProgress(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	gid := h.m.cur
	h.update(EventMsg(api.Event{Kind: api.EventSync, Group: gid, Sync: &api.SyncState{CatchingUp: true, Done: 120, Total: 2000}}))
	h.contains("catching up 120/2,000")
	h.update(EventMsg(api.Event{Kind: api.EventSync, Group: gid, Sync: &api.SyncState{}}))
	h.contains("up to date")
	h.update(EventMsg(api.Event{Kind: api.EventSync, Group: gid, Detail: "this device's branch lost beyond the retention window"}))
	h.contains("! #general: this device's branch lost")
}

func TestEventGroupJoinedAndPeers(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	if _, err := f.CreateGroup(context.Background(), "newcomer"); err != nil {
		t.Fatal(err)
	}
	h.update(EventMsg(api.Event{Kind: api.EventGroupJoined}))
	h.contains("#newcomer")
	f.SetPeers([]api.Peer{{ID: "p1"}, {ID: "p2"}})
	h.update(EventMsg(api.Event{Kind: api.EventPeers}))
	h.contains("peers 2")
	h.lacks("no peers connected")
	// A message for a group this UI does not know yet refreshes the list.
	if _, err := f.CreateGroup(context.Background(), "later"); err != nil {
		t.Fatal(err)
	}
	must(t, f.Receive("later", "bob", "surprise"))
	h.pump()
	h.contains("#later")
}

func TestOffline(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	h.update(DisconnectedMsg{})
	h.contains("OFFLINE: daemon not reachable")
	h2 := newHarness(t, fakeWith(t), Options{})
	h2.m.svc.(*apitest.Fake).SetError("Send", api.Errorf(api.CodeUnavailable, "api: connection to daemon closed"))
	h2.enter("x")
	h2.contains("OFFLINE", "! send: api: connection to daemon closed")
	f3 := apitest.New("a")
	f3.SetError("Status", fmt.Errorf("dial: %w", api.ErrDaemonNotRunning))
	h3 := newHarness(t, f3, Options{})
	h3.contains("OFFLINE: daemon not reachable (is grove up running? then restart chat)")
}

func TestScrollbackLoadsOlderHistory(t *testing.T) {
	f := fakeWith(t)
	for i := range 250 {
		must(t, f.Receive("general", "bob", fmt.Sprintf("line %03d", i)))
	}
	h := newHarness(t, f, Options{})
	if n := len(h.m.msgs[h.m.cur]); n != pageSize {
		t.Fatalf("first page %d messages", n)
	}
	h.contains("line 249")
	for range 200 {
		h.key(tea.KeyPgUp)
		if h.m.full[h.m.cur] && h.m.scroll == len(h.m.timeline(h.m.cur, h.m.paneWidth()))-h.m.bodyHeight() {
			break
		}
	}
	if n := len(h.m.msgs[h.m.cur]); n != 251 {
		t.Fatalf("after scrolling back %d messages loaded, want all 251", n)
	}
	h.contains("beginning of history", "hello from bob")
	h.checkLayout()
	for range 200 {
		h.key(tea.KeyPgDown)
	}
	if h.m.scroll != 0 {
		t.Fatalf("scroll %d after paging down", h.m.scroll)
	}
	h.contains("line 249")
	// While scrolled up, a new message does not move the view.
	h.key(tea.KeyUp)
	h.key(tea.KeyUp)
	before := h.screen()
	must(t, f.Receive("general", "bob", "new while reading"))
	h.pump()
	if h.screen() != before {
		t.Fatalf("view moved while scrolled up:\n%s\n---\n%s", before, h.screen())
	}
}

func TestResize(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	for _, size := range [][2]int{{80, 24}, {120, 40}, {200, 60}, {50, 15}, {80, 24}} {
		h.update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		h.checkLayout()
		h.contains("hello from bob", "peers 0")
		if size[0] >= listMinWidth {
			h.contains("#random")
		} else {
			h.lacks("#random")
		}
	}
	h.update(tea.WindowSizeMsg{Width: 20, Height: 3})
	h.checkLayout()
}

// hasColour reports whether s sets a foreground or background colour in
// an SGR sequence (parameters 30-38, 40-48, 90-97, 100-107).
func hasColour(s string) bool {
	for _, m := range sgr.FindAllStringSubmatch(s, -1) {
		for _, p := range strings.Split(m[1], ";") {
			n, err := strconv.Atoi(p)
			if err == nil && (n >= 30 && n <= 38 || n >= 40 && n <= 48 || n >= 90 && n <= 107) {
				return true
			}
		}
	}
	return false
}

var sgr = regexp.MustCompile(`\x1b\[([0-9;:]*)m`)

func TestNoColor(t *testing.T) {
	coloured := newHarness(t, fakeWith(t), Options{})
	if !hasColour(coloured.m.screen()) {
		t.Fatalf("expected colours without NoColor:\n%q", coloured.m.screen())
	}
	plain := newHarness(t, fakeWith(t), Options{NoColor: true})
	plain.enter("/search hello")
	plain.key(tea.KeyEnter)
	plain.enter("oops")
	plain.update(tea.KeyPressMsg{Code: 'x', Text: "x"})
	if s := plain.m.screen(); hasColour(s) {
		t.Fatalf("colours with NoColor:\n%q", s)
	}
	plain.contains("> alice: oops")
}

var errBoom = errors.New("boom")

func TestLogErrorShown(t *testing.T) {
	f := fakeWith(t)
	f.SetError("Log", errBoom)
	h := newHarness(t, f, Options{})
	h.contains("! history: boom")
}

// publishLater reports own messages as pending when sent, and published
// in later Log calls, as a daemon does when its outbox publishes later.
type publishLater struct{ *apitest.Fake }

func (p publishLater) Send(ctx context.Context, group, text string) (api.Message, error) {
	m, err := p.Fake.Send(ctx, group, text)
	m.Pending = true
	return m, err
}

func TestPendingRefresh(t *testing.T) {
	f := fakeWith(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := f.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessFor(ctx, t, f, publishLater{f}, Options{Location: time.UTC}, events)
	for len(events) > 0 {
		<-events
	}
	h.m.pendingEvery = time.Millisecond
	for _, r := range "queued" {
		h.update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	// Enter sends (pending), which schedules the reload; the reload shows
	// it published. The fake's own message event is dropped on purpose, so
	// that only the reload can clear the mark.
	h.key(tea.KeyEnter)
	for len(events) > 0 {
		<-events
	}
	h.contains("> alice: queued")
	h.lacks("queued ...")
	if h.m.pendingTick {
		t.Fatal("a reload is still scheduled with nothing pending")
	}
}

// The cached timeline, extended message by message, must equal a fresh
// rendering of the same history.
func TestIncrementalTimelineMatchesFullRender(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	gid := h.m.cur
	base := apitest.Epoch0.Add(time.Hour)
	for i := range 40 {
		when := base.Add(time.Duration(i) * 3 * time.Hour) // crosses days
		msg := api.Message{Group: gid, ID: fmt.Sprintf("x%02d", i), Sender: "carol", Text: strings.Repeat("word ", i), Time: when, Own: i%3 == 0}
		h.update(EventMsg(api.Event{Kind: api.EventMessage, Group: gid, Message: &msg}))
		if i%5 == 0 {
			h.update(EventMsg(api.Event{Kind: api.EventEpoch, Group: gid, Epoch: uint64(i), Time: when.Add(time.Minute)}))
		}
		_ = h.m.screen() // render, so that the next change extends the cache
	}
	got := h.m.timeline(gid, h.m.paneWidth())
	want := h.m.renderTimeline(gid, h.m.paneWidth(), &tlCache{})
	if len(got) != len(want) {
		t.Fatalf("cached timeline has %d lines, fresh %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("line %d: cached %q, fresh %q", i, got[i].text, want[i].text)
		}
	}
	// A message arriving out of order invalidates rather than appends.
	late := api.Message{Group: gid, ID: "late", Sender: "bob", Text: "delayed", Time: base}
	h.update(EventMsg(api.Event{Kind: api.EventMessage, Group: gid, Message: &late}))
	got = h.m.timeline(gid, h.m.paneWidth())
	want = h.m.renderTimeline(gid, h.m.paneWidth(), &tlCache{})
	if len(got) != len(want) {
		t.Fatalf("after a late message: cached %d lines, fresh %d", len(got), len(want))
	}
}

// TestCountsAgreeInNumber checks "1 member" and "1 hit", not "1 members"
// and "1 hits".
func TestCountsAgreeInNumber(t *testing.T) {
	f := apitest.New("alice")
	if _, err := f.CreateGroup(context.Background(), "solo"); err != nil {
		t.Fatal(err)
	}
	must(t, f.Receive("solo", "alice", "only word"))
	h := newHarness(t, f, Options{})
	h.contains("#solo · 1 member ")
	h.lacks("1 members")
	h.enter("/members")
	h.contains("#solo: 1 member. Compare")
	h.key(tea.KeyEscape)
	h.enter("/search only")
	h.contains(`search "only": 1 hit ·`)
}

// TestNoticeExpires checks that a notice goes away after a while (an old
// error used to stay on screen until the next notice), and that a newer
// notice is not cleared by an older one's expiry.
func TestNoticeExpires(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	h.m.noticeFor = time.Hour // scheduled, never run: the test delivers expiries itself
	nm, cmd := h.m.Update(noticeMsg{text: "first"})
	h.m = nm.(Model)
	if cmd == nil {
		t.Fatal("no expiry scheduled for a new notice")
	}
	first := h.m.noticeSeq
	h.contains("first")
	h.m.noticeFor = 0
	h.update(noticeMsg{text: "second"})
	h.update(noticeExpiredMsg{seq: first})
	h.contains("second")
	h.update(noticeExpiredMsg{seq: h.m.noticeSeq})
	h.lacks("second")
}

// TestReconnectSendsQueuedLines checks the model's side of surviving a
// daemon restart: while offline, Enter keeps the line; a send that fails
// because the daemon went away is kept too; once Run reconnects, both go
// out in order over the new connection, and the offline mark goes.
func TestReconnectSendsQueuedLines(t *testing.T) {
	old := fakeWith(t)
	redial := func(context.Context) (api.Service, error) { return nil, errors.New("unused") }
	h := newHarness(t, old, Options{Redial: redial})
	old.SetError("Send", api.Errorf(api.CodeUnavailable, "api: connection to daemon closed"))
	h.enter("lost in flight")
	h.contains("OFFLINE (1 waiting to send): daemon not reachable: reconnecting", "1 message waiting")
	h.update(DisconnectedMsg{})
	// The daemon is back, but this UI has not reconnected yet: Enter must
	// not send (it would go over the dead connection), only keep the line.
	old.SetError("Send", nil)
	h.enter("typed while offline")
	h.contains("2 messages waiting", "OFFLINE (2 waiting to send)")
	own := func() []string {
		ms, err := old.Log(context.Background(), "general", 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			if m.Own {
				out = append(out, m.Text)
			}
		}
		return out
	}
	if got := own(); len(got) != 0 {
		t.Fatalf("sent before reconnecting: %q", got)
	}

	h.update(ReconnectedMsg{Svc: old})
	h.pump()
	h.lacks("OFFLINE")
	h.contains("alice: lost in flight", "alice: typed while offline")
	if got := own(); len(got) != 2 || got[0] != "lost in flight" || got[1] != "typed while offline" {
		t.Fatalf("sent after reconnecting: %q", got)
	}
}

// TestInviteCodeCopiesCleanly checks the invite pane: the code takes the
// whole width, beside no group list and unindented, so that selecting its
// lines on screen copies the code and line breaks only.
func TestInviteCodeCopiesCleanly(t *testing.T) {
	h := newHarness(t, fakeWith(t), Options{})
	code := "grove1-" + strings.Repeat("abcdefghij", 17)
	h.update(inviteMsg{inv: api.Invite{Code: code, Group: h.m.cur}})
	h.checkLayout()
	var got strings.Builder
	for _, l := range strings.Split(h.screen(), "\n") {
		l = strings.TrimRight(l, " ")
		if strings.HasPrefix(l, "grove1-") || (got.Len() > 0 && got.Len() < len(code) && l != "") {
			if strings.ContainsAny(l, "│ ") {
				t.Fatalf("a code line holds more than the code: %q", l)
			}
			got.WriteString(l)
		}
	}
	if got.String() != code {
		t.Fatalf("the code's lines join to %q, want %q; screen:\n%s", got.String(), code, h.screen())
	}
	h.key(tea.KeyEscape)
	h.contains("#general", "│")
}

// TestManageCommands checks /mute, /unmute and /rename against the Fake,
// and that a group change event shows as a note.
func TestManageCommands(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	h.enter("/mute")
	h.contains("muted #general", "▶ #general         ~│")
	gs, _ := f.Groups(context.Background())
	if !gs[0].Muted {
		t.Fatalf("not muted: %+v", gs[0])
	}
	h.enter("/unmute")
	h.contains("unmuted #general")
	h.enter("/rename")
	h.contains("usage: /rename NEWNAME")
	h.enter("/rename garden")
	h.pump()
	h.contains("renamed #general", "#garden")
	h.enter("/promote")
	h.contains("usage: /promote NAME")
	h.update(EventMsg(api.Event{Kind: api.EventGroupChanged, Group: h.m.cur, Time: apitest.Epoch0, Detail: "bob became an admin"}))
	h.contains("bob became an admin")
}

// TestJoinedGroupSaysHistoryStartsAtJoin checks that a group this device
// joined through an invite says, where its history begins, that earlier
// messages are not available here.
func TestJoinedGroupSaysHistoryStartsAtJoin(t *testing.T) {
	f := fakeWith(t)
	h := newHarness(t, f, Options{})
	h.contains("beginning of history")
	g := h.m.group(h.m.cur)
	g.JoinedAt = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	h.m.version[h.m.cur]++
	h.contains("you joined on Fri 2 Jan 2026 03:04: messages from", "are not available on this device")
	h.lacks("beginning of history")
}
