package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"grove/node/api"
)

// recorder is a Notifier that keeps what it was asked to show.
type recorder struct {
	ch chan string // "title | body"
}

func newRecorder() *recorder { return &recorder{ch: make(chan string, 100)} }

func (r *recorder) Notify(_ context.Context, title, body string) error {
	r.ch <- title + " | " + body
	return nil
}

// next returns the next notification, failing after a while.
func (r *recorder) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-r.ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatal("no notification")
		return ""
	}
}

// TestMentionNotifies checks desktop notifications on real daemons: a
// message mentioning you (@name, any case, not a longer name) or replying
// to one of your messages notifies,
// other messages, your own and those of a muted group do not (whose
// unread count still grows), and --notify=false turns them off.
// Assertions ride on order: the daemon notifies in arrival order, so the
// next notification after a silent message is the next mention's.
func TestMentionNotifies(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := newDevice(t, "alice"), newDevice(t, "bob")
	ra, rb := newRecorder(), newRecorder()
	alice.runner.Notifier, bob.runner.Notifier = ra, rb
	alice.upInProcess()
	bob.upInProcess("--notify=false")
	alice.ok("group", "create", "ops")
	join(t, alice, bob, "ops")

	bob.ok("send", "ops", "hello everyone")
	bob.ok("send", "ops", "@alicex is someone else")
	bob.ok("send", "ops", "@alice can you look?")
	if got, want := ra.next(t), "grove · #ops | bob: @alice can you look?"; got != want {
		t.Fatalf("notification %q, want %q", got, want)
	}
	alice.ok("send", "ops", "@alice note to self")
	alice.ok("group", "mute", "ops")
	before := groupUnread(alice, "ops")
	bob.ok("send", "ops", "@alice while muted")
	waitUntil(t, 20*time.Second, "the muted group's unread count to grow", func() bool { return groupUnread(alice, "ops") > before })
	alice.ok("group", "unmute", "ops")
	bob.ok("send", "ops", "thanks, @Alice.")
	if got, want := ra.next(t), "grove · #ops | bob: thanks, @Alice."; got != want {
		t.Fatalf("after unmute: notification %q, want %q", got, want)
	}
	// A reply to one of alice's messages notifies her; a reply to bob's
	// own message does not.
	var mine, his api.Message
	if err := json.Unmarshal([]byte(alice.ok("send", "ops", "the plan is in the doc", "--json")), &mine); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(bob.ok("send", "ops", "I will look later", "--json")), &his); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "bob to have alice's message", func() bool {
		return strings.Contains(bob.ok("log", "ops"), "the plan is in the doc")
	})
	bob.ok("send", "ops", "--reply", his.ID, "note to myself")
	bob.ok("send", "ops", "--reply", mine.ID, "read it, looks good")
	if got, want := ra.next(t), "grove · #ops | bob: read it, looks good"; got != want {
		t.Fatalf("reply: notification %q, want %q", got, want)
	}
	// Bob's daemon runs with --notify=false.
	alice.ok("send", "ops", "@bob done")
	waitUntil(t, 20*time.Second, "alice's message to reach bob", func() bool {
		return strings.Contains(bob.ok("log", "ops"), "@bob done")
	})
	select {
	case s := <-rb.ch:
		t.Errorf("notification with --notify=false: %q", s)
	default:
	}
	select {
	case s := <-ra.ch:
		t.Errorf("unexpected notification: %q", s)
	default:
	}
}

func groupUnread(d *device, name string) int {
	d.t.Helper()
	var gs []api.Group
	if err := json.Unmarshal([]byte(d.ok("group", "list", "--json")), &gs); err != nil {
		d.t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name == name {
			return g.Unread
		}
	}
	d.t.Fatalf("no group %s", name)
	return 0
}

func TestMentions(t *testing.T) {
	for _, c := range []struct {
		text, name string
		want       bool
	}{
		{"@alice hi", "alice", true},
		{"hi @ALICE!", "alice", true},
		{"hi @alice", "alice", true},
		{"@alicex", "alice", false},
		{"@alice_b", "alice", false},
		{"@al", "alice", false},
		{"alice", "alice", false},
		{"mail alice@alice.org", "alice", false},
		{"@alice smith, and @alice", "alice smith", true},
		{"@alicex and @alice.", "alice", true},
	} {
		if got := mentions(c.text, c.name); got != c.want {
			t.Errorf("mentions(%q, %q) = %v", c.text, c.name, got)
		}
	}
}

// TestNotifySend runs the notify-send backend against a stand-in script
// that records its arguments: the title and body arrive as two arguments
// after "--", whatever they contain.
func TestNotifySend(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	script := filepath.Join(dir, "notify-send")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> "+out+"; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n := notifySendNotifier{path: script}
	if err := n.Notify(context.Background(), "grove · #ops", "-bob: $(rm -rf /) `x`"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if want := "--app-name=grove\n--\ngrove · #ops\n-bob: $(rm -rf /) `x`\n"; string(got) != want {
		t.Errorf("notify-send got\n%q, want\n%q", got, want)
	}
}

// notificationServer stands in for a desktop's notification service on a
// private session bus.
type notificationServer struct {
	mu  sync.Mutex
	got []string
}

func (s *notificationServer) Notify(app string, id uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, app+" | "+summary+" | "+body)
	return uint32(len(s.got)), nil
}

// TestDBusNotifier runs the D-Bus backend against a private dbus-daemon
// with a stand-in org.freedesktop.Notifications service.
func TestDBusNotifier(t *testing.T) {
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dbus-daemon is not installed")
		}
		t.Skip("dbus-daemon is not installed")
	}
	dir := shortTempDir(t)
	addr := "unix:path=" + filepath.Join(dir, "bus")
	bus := exec.Command("dbus-daemon", "--session", "--nofork", "--nopidfile", "--address="+addr)
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	var conn *dbus.Conn
	waitUntil(t, 10*time.Second, "the private bus", func() bool {
		c, err := dbus.Connect(addr)
		if err != nil {
			return false
		}
		conn = c
		return true
	})
	defer conn.Close()
	srv := &notificationServer{}
	if err := conn.Export(srv, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v %v", reply, err)
	}
	n := &dbusNotifier{addr: addr}
	defer n.Close()
	for _, body := range []string{"bob: @alice look", "bob: again"} {
		if err := n.Notify(context.Background(), "grove · #ops", body); err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if want := []string{"grove | grove · #ops | bob: @alice look", "grove | grove · #ops | bob: again"}; strings.Join(srv.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("service got %q", srv.got)
	}
}
