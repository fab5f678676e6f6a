package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"runtime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"

	"grove/node/api"
)

// Desktop notifications. The daemon (not a client: it runs whether or not
// a chat is open) watches its own event stream and shows a notification
// for a message that asks for this person's attention: one that mentions
// them as @name, or a reply to one of their own messages. A muted
// group (grove group mute) never notifies; its unread count grows as
// before. up --notify=false, or GROVE_NOTIFY=off, turns notifications off.
//
// Where notifications go: the freedesktop notification service over the
// session D-Bus (org.freedesktop.Notifications) on Linux and the BSDs,
// else notify-send where it is installed, osascript on macOS. With none
// of them the daemon logs once that it cannot notify and carries on.

// Notifier shows desktop notifications.
type Notifier interface {
	Notify(ctx context.Context, title, body string) error
}

// notifyMaxAge: a message older than this when it arrives (history caught
// up after a long absence) does not notify; a burst of stale pop-ups is
// noise, and the unread counts already tell.
const notifyMaxAge = 10 * time.Minute

// notifyBodyMax bounds a notification's text, in bytes.
const notifyBodyMax = 200

// notifyReason says why m should notify the person whose display name is
// self, or "" if it should not. ownMessage reports whether the message
// with the given id in m's group is this device's own; it is asked only
// for a reply.
func notifyReason(m api.Message, self string, ownMessage func(group, id string) bool) string {
	if m.Own || self == "" || m.Deleted {
		return ""
	}
	if mentions(m.Text, self) {
		return "mention"
	}
	if m.ReplyTo != "" && ownMessage(m.Group, m.ReplyTo) {
		return "reply"
	}
	return ""
}

// notifyReplyWindow is how far back in a group's history a replied-to
// message is looked for; a reply to an older message does not notify.
const notifyReplyWindow = 2000

// ownMessageIn returns an ownMessage for notifyReason that looks the
// target up in d's recent history.
func ownMessageIn(ctx context.Context, d api.Service) func(group, id string) bool {
	return func(group, id string) bool {
		ms, err := d.Log(ctx, group, notifyReplyWindow)
		if err != nil {
			return false
		}
		for _, t := range ms {
			if t.ID == id {
				return t.Own
			}
		}
		return false
	}
}

// mentions reports whether text contains @name (case-insensitive) as a
// word of its own: not inside a word (an email address) nor followed by a
// letter or digit (@al does not mention alice).
func mentions(text, name string) bool {
	lt, ln := strings.ToLower(text), "@"+strings.ToLower(name)
	word := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }
	for i := 0; ; {
		j := strings.Index(lt[i:], ln)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(ln)
		before, _ := utf8.DecodeLastRuneInString(lt[:start])
		after, _ := utf8.DecodeRuneInString(lt[end:])
		if (start == 0 || !word(before)) && (end == len(lt) || !word(after)) {
			return true
		}
		i = start + 1
	}
}

// notifyOff reports whether GROVE_NOTIFY turns notifications off.
func notifyOff(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "0", "false", "no":
		return true
	}
	return false
}

// systemNotifier returns the notification service of this desktop, or nil.
func (e *env) systemNotifier() Notifier {
	if e.r.Notifier != nil {
		return e.r.Notifier
	}
	if runtime.GOOS == "darwin" {
		if p, err := exec.LookPath("osascript"); err == nil {
			return osascriptNotifier{path: p}
		}
		return nil
	}
	if addr := e.r.getenv("DBUS_SESSION_BUS_ADDRESS"); addr != "" {
		return &dbusNotifier{addr: addr}
	}
	if p, err := exec.LookPath("notify-send"); err == nil {
		return notifySendNotifier{path: p}
	}
	return nil
}

// notifyLoop shows a notification for each message of d's event stream
// that notifyReason selects, until ctx ends.
func notifyLoop(ctx context.Context, d api.Service, n Notifier, log *slog.Logger, now func() time.Time) {
	st, err := d.Status(ctx)
	if err != nil {
		return
	}
	events, err := d.Subscribe(ctx)
	if err != nil {
		log.Warn("notifications off: cannot follow events", "err", err)
		return
	}
	failed := false
	for ev := range events {
		if ev.Kind != api.EventMessage || ev.Message == nil {
			continue
		}
		m := *ev.Message
		reason := notifyReason(m, st.Name, ownMessageIn(ctx, d))
		if reason == "" || now().Sub(m.Time) > notifyMaxAge {
			continue
		}
		gs, err := d.Groups(ctx)
		if err != nil {
			continue
		}
		group := shortID(m.Group)
		muted := false
		for _, g := range gs {
			if g.ID == m.Group {
				group, muted = sanitize(g.Name), g.Muted
			}
		}
		if muted {
			continue
		}
		body := sanitize(m.Sender) + ": " + sanitizeText(m.Text)
		if len(body) > notifyBodyMax {
			body = strings.ToValidUTF8(body[:notifyBodyMax], "") + "…"
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = n.Notify(nctx, "grove · #"+group, body)
		cancel()
		switch {
		case err != nil && !failed:
			failed = true
			log.Warn("desktop notification failed (further failures are not logged)", "err", err)
		case err == nil:
			log.Debug("notified", "reason", reason, "group", group)
		}
	}
}

// dbusNotifier calls org.freedesktop.Notifications.Notify on the session
// bus (Desktop Notifications Specification, version 1.2), connecting on
// first use and again after a failure.
type dbusNotifier struct {
	addr string
	conn *dbus.Conn // owned by notifyLoop's goroutine
}

func (n *dbusNotifier) Notify(ctx context.Context, title, body string) error {
	if n.conn == nil {
		conn, err := dbus.Connect(n.addr)
		if err != nil {
			return fmt.Errorf("session bus: %w", err)
		}
		n.conn = conn
	}
	obj := n.conn.Object("org.freedesktop.Notifications", "/org/freedesktop/Notifications")
	call := obj.CallWithContext(ctx, "org.freedesktop.Notifications.Notify", 0,
		"grove", uint32(0), "", title, body, []string{}, map[string]dbus.Variant{}, int32(-1))
	if call.Err != nil {
		n.conn.Close()
		n.conn = nil
		return fmt.Errorf("notification service: %w", call.Err)
	}
	return nil
}

// Close closes the bus connection, if any.
func (n *dbusNotifier) Close() error {
	if n.conn == nil {
		return nil
	}
	return n.conn.Close()
}

// notifySendNotifier runs notify-send (libnotify).
type notifySendNotifier struct{ path string }

func (n notifySendNotifier) Notify(ctx context.Context, title, body string) error {
	// "--" so that a body starting with "-" is not an option.
	out, err := exec.CommandContext(ctx, n.path, "--app-name=grove", "--", title, body).CombinedOutput()
	if err != nil {
		return fmt.Errorf("notify-send: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// osascriptNotifier shows a macOS notification through AppleScript.
type osascriptNotifier struct{ path string }

func (n osascriptNotifier) Notify(ctx context.Context, title, body string) error {
	script := "display notification " + appleString(body) + " with title " + appleString(title)
	out, err := exec.CommandContext(ctx, n.path, "-e", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("osascript: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// appleString quotes s as an AppleScript string literal.
func appleString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

var errNoNotifier = errors.New("no desktop notification service (no session D-Bus, notify-send or osascript)")
