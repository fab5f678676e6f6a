package cli

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"grove/node/api"
)

// background runs a long-running command (log --follow, watch) until the
// returned stop function is called, which returns its error and output.
func (h *harness) background(args ...string) (stop func() (error, string)) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	// An earlier command's subscription ends on the daemon a moment
	// after the command.
	waitUntil(h.t, 10*time.Second, "earlier subscriptions to end", func() bool { return h.fake.Subscribers() == 0 })
	go func() {
		done <- h.runner.Run(ctx, append([]string{"--home", h.home}, args...), strings.NewReader(""), out, io.Discard)
	}()
	waitUntil(h.t, 10*time.Second, "the command to subscribe", func() bool { return h.fake.Subscribers() > 0 })
	return func() (error, string) {
		cancel()
		return <-done, out.String()
	}
}

func TestLogFollow(t *testing.T) {
	h := newHarness(t)
	h.up()
	h.ok("group", "create", "ops")
	h.ok("group", "create", "dev")
	h.ok("send", "ops", "before")
	stop := h.background("log", "ops", "--follow")
	if err := h.fake.Receive("ops", "bob", "while following"); err != nil {
		t.Fatal(err)
	}
	if err := h.fake.Receive("dev", "bob", "other group"); err != nil {
		t.Fatal(err)
	}
	h.ok("send", "ops", "own too")
	waitUntil(t, 10*time.Second, "the messages to be printed", func() bool {
		var gs []api.Group
		json.Unmarshal([]byte(h.ok("group", "list", "--json")), &gs)
		return len(gs) == 2 && gs[0].Name == "ops" && h.fake.Subscribers() == 1 && gs[0].Unread == 0 && gs[1].Unread == 1
	})
	time.Sleep(100 * time.Millisecond) // let the own message's event arrive too
	err, out := stop()
	if err != nil {
		t.Fatalf("log --follow ended with %v", err)
	}
	// Lines are printed as messages arrive, so columns do not align.
	want := "" +
		"2026-01-02 03:04:08  alice  before\n" +
		"2026-01-02 03:04:09  bob  while following\n" +
		"2026-01-02 03:04:11  alice  own too\n"
	if out != want {
		t.Errorf("log --follow printed\n%s\nwant\n%s", out, want)
	}

	stop = h.background("log", "ops", "-f", "--json", "--limit", "1")
	h.fake.Receive("ops", "carol", "json line")
	var lines []string
	waitUntil(t, 10*time.Second, "the JSON line", func() bool {
		return h.fake.Subscribers() == 1 // still following
	})
	time.Sleep(100 * time.Millisecond)
	err, out = stop()
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 2 {
		t.Fatalf("log -f --json: %v %q", err, out)
	}
	var m api.Message
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil || m.Text != "json line" || m.Sender != "carol" {
		t.Errorf("log -f --json second line: %+v %v", m, err)
	}
	h.fails("grove: no group \"nope\"\n", 1, "log", "nope", "--follow")
}

func TestWatch(t *testing.T) {
	h := newHarness(t)
	h.up()
	h.ok("group", "create", "ops")
	h.ok("group", "create", "dev")
	stop := h.background("watch")
	h.fake.Receive("ops", "bob", "hello ops")
	h.fake.AddMember("dev", "carol", false)
	h.fake.Receive("dev", "carol", "hi dev")
	time.Sleep(200 * time.Millisecond)
	err, out := stop()
	want := "" +
		"2026-01-02 03:04:08  ops  bob  hello ops\n" +
		"2026-01-02 03:04:08  dev  * carol joined\n" +
		"2026-01-02 03:04:09  dev  carol  hi dev\n"
	if err != nil || out != want {
		t.Errorf("watch: %v, printed\n%s\nwant\n%s", err, out, want)
	}
	stop = h.background("watch", "--json")
	h.fake.Receive("ops", "bob", "as json")
	time.Sleep(200 * time.Millisecond)
	err, out = stop()
	var ev api.Event
	if jerr := json.Unmarshal([]byte(out), &ev); err != nil || jerr != nil || ev.Kind != api.EventMessage || ev.Message == nil || ev.Message.Text != "as json" {
		t.Errorf("watch --json: %v %q %v", err, out, jerr)
	}
}

func TestSearchFilters(t *testing.T) {
	h := newHarness(t)
	h.up()
	h.ok("group", "create", "ops")
	h.ok("send", "ops", "deploy one") // 03:04:07
	h.fake.Receive("ops", "bob", "deploy two")
	h.ok("send", "ops", "deploy three") // 03:04:09
	texts := func(args ...string) string {
		t.Helper()
		var res api.SearchResult
		if err := json.Unmarshal([]byte(h.ok(append([]string{"search", "deploy", "--json"}, args...)...)), &res); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, hit := range res.Hits {
			out = append(out, hit.Message.Text)
		}
		return strings.Join(out, "|")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "deploy one|deploy two|deploy three"},
		{[]string{"--from", "bob"}, "deploy two"},
		{[]string{"--from", "alice"}, "deploy one|deploy three"},
		{[]string{"--since", "2026-01-02T03:04:08Z"}, "deploy two|deploy three"},
		{[]string{"--until", "2026-01-02T03:04:08Z"}, "deploy one"},
		{[]string{"--since", "2026-01-02T03:04:08Z", "--until", "2026-01-02T03:04:09Z", "--from", "bob"}, "deploy two"},
		{[]string{"--since", "1h"}, "deploy one|deploy two|deploy three"}, // the harness clock is 1h after the first second
		{[]string{"--since", "2026-01-03"}, ""},
	} {
		if got := texts(c.args...); got != c.want {
			t.Errorf("search %v: %q, want %q", c.args, got, c.want)
		}
	}
	h.fails("grove: search: bad --until \"soon\" (want an RFC 3339 time, YYYY-MM-DD or a duration like 24h)\n", 2, "search", "x", "--until", "soon")
	h.fails("grove: search: --until is before --since\n", 2, "search", "x", "--since", "2026-01-02", "--until", "2026-01-01")
}

// TestFollowRealDaemons checks log --follow and watch against real
// daemons: a message another member sends shows up while they run.
func TestFollowRealDaemons(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := opsPair(t, true)

	start := func(args ...string) (*syncBuffer, func() error) {
		ctx, cancel := context.WithCancel(context.Background())
		out := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- bob.runner.Run(ctx, append([]string{"--home", bob.home}, args...), strings.NewReader(""), out, io.Discard)
		}()
		var once sync.Once
		var err error
		return out, func() error { once.Do(func() { cancel(); err = <-done }); return err }
	}
	follow, stopFollow := start("log", "ops", "--follow", "--json")
	watch, stopWatch := start("watch")
	defer stopFollow()
	defer stopWatch()
	// The subscriptions start a moment after the commands; send until the
	// first message shows, then one more that must show in both.
	waitUntil(t, 20*time.Second, "follow to print a new message", func() bool {
		alice.ok("send", "ops", "ping")
		time.Sleep(200 * time.Millisecond)
		return strings.Contains(follow.String(), `"text":"ping"`) && strings.Contains(watch.String(), "ops  alice  ping")
	})
	alice.ok("send", "ops", "the last word")
	waitUntil(t, 20*time.Second, "both to print the last message", func() bool {
		return strings.Contains(follow.String(), `"text":"the last word"`) && strings.Contains(watch.String(), "ops  alice  the last word")
	})
	if err := stopFollow(); err != nil {
		t.Errorf("log --follow: %v", err)
	}
	if err := stopWatch(); err != nil {
		t.Errorf("watch: %v", err)
	}
}
