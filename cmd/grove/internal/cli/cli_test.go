package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"grove/node/api"
	"grove/node/api/apitest"
)

// fakeDaemon is a Daemon over apitest.Fake that records its lifecycle.
type fakeDaemon struct {
	*apitest.Fake
	mu      sync.Mutex
	started bool
	closed  bool
}

func (d *fakeDaemon) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.started = true
	return nil
}

func (d *fakeDaemon) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	return nil
}

func (d *fakeDaemon) Metrics() []Metric {
	return []Metric{
		{Name: "grove_messages_in_total", Help: "MLS messages processed.", Type: "counter", Value: 7},
		{Name: "grove_peers", Help: "Connected peers.", Type: "gauge", Value: 2},
	}
}

// harness runs the CLI against a fake daemon in a short temporary home.
type harness struct {
	t       *testing.T
	home    string
	fake    *apitest.Fake
	daemon  *fakeDaemon
	configs []DaemonConfig
	runner  *Runner
	env     map[string]string
	log     *syncBuffer
	stopUp  func()
}

// shortTempDir returns a directory whose socket path stays below the
// 108-byte sun_path limit, which t.TempDir under long test names can break.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gcli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func newHarness(t *testing.T) *harness {
	checkLeaks(t)
	h := &harness{t: t, home: filepath.Join(shortTempDir(t), "home"), fake: apitest.New("alice"), env: map[string]string{}}
	h.daemon = &fakeDaemon{Fake: h.fake}
	h.runner = &Runner{
		Getenv:   func(k string) string { return h.env[k] },
		Keyring:  &fakeKeyring{unavailable: true},
		Location: time.UTC,
		Now:      func() time.Time { return apitest.Epoch0.Add(time.Hour) },
		// Tests never take the web client's fixed default port.
		testingOnlyDefaultGUI: "off",
		NewDaemon: func(cfg DaemonConfig) (Daemon, error) {
			h.configs = append(h.configs, cfg)
			return h.daemon, nil
		},
	}
	return h
}

// run runs one command line with --home set and returns stdout, stderr and
// the error.
func (h *harness) run(stdin string, args ...string) (string, string, error) {
	h.t.Helper()
	var out, errOut bytes.Buffer
	err := h.runner.Run(context.Background(), append([]string{"--home", h.home}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// ok runs a command that must succeed and returns its stdout.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	out, errOut, err := h.run("", args...)
	if err != nil || errOut != "" {
		h.t.Fatalf("grove %s: %v, stderr %q", strings.Join(args, " "), err, errOut)
	}
	return out
}

// fails runs a command that must fail with the given stderr line and exit
// code.
func (h *harness) fails(wantStderr string, wantCode int, args ...string) {
	h.t.Helper()
	out, errOut, err := h.run("", args...)
	if err == nil {
		h.t.Fatalf("grove %s succeeded: %q", strings.Join(args, " "), out)
	}
	if errOut != wantStderr {
		h.t.Errorf("grove %s: stderr\n%q\nwant\n%q", strings.Join(args, " "), errOut, wantStderr)
	}
	if code := ExitCode(err); code != wantCode {
		h.t.Errorf("grove %s: exit code %d, want %d", strings.Join(args, " "), code, wantCode)
	}
}

// up starts `grove up` with args and waits until the API serves.
func (h *harness) up(args ...string) {
	h.t.Helper()
	if err := os.MkdirAll(h.home, 0o700); err != nil {
		h.t.Fatal(err)
	}
	ready := make(chan string, 1)
	h.runner.Ready = func(sock string) { ready <- sock }
	ctx, cancel := context.WithCancel(context.Background())
	h.log = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- h.runner.Run(ctx, append([]string{"--home", h.home, "up"}, args...), strings.NewReader(""), io.Discard, h.log)
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		h.t.Fatalf("up: %v; log:\n%s", err, h.log)
	case <-time.After(10 * time.Second):
		h.t.Fatal("up did not become ready")
	}
	stopped := false
	h.stopUp = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("up returned %v", err)
		}
	}
	h.t.Cleanup(h.stopUp)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkLeaks fails the test if goroutines of the CLI or the API transport
// outlive it. Call it first so that its cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() {
		var leaked string
		for range 300 {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			leaked = ""
			for g := range strings.SplitSeq(string(buf), "\n\n") {
				if (strings.Contains(g, "grove/node/api.") || strings.Contains(g, "grove/cmd/grove/internal/cli.")) &&
					!strings.Contains(g, "checkLeaks") && !strings.Contains(g, "testing.tRunner") {
					leaked += g + "\n\n"
				}
			}
			if leaked == "" {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("leaked goroutines:\n%s", leaked)
	})
}

func TestEveryCommandAgainstFakeDaemon(t *testing.T) {
	h := newHarness(t)
	h.up("--listen", "/ip4/127.0.0.1/tcp/0")
	h.fake.SetPeers([]api.Peer{
		{ID: "12D3KooWbob", Addrs: []string{"/ip4/127.0.0.1/tcp/4002", "/ip4/127.0.0.1/udp/4002/quic-v1"}, Name: "bob", Groups: []string{"ops"}},
		{ID: "12D3KooWstranger", Addrs: []string{"/ip4/127.0.0.1/tcp/4003"}},
	})

	if got, want := h.ok("group", "list"), "no groups\n"; got != want {
		t.Errorf("empty group list: %q", got)
	}
	if got, want := h.ok("group", "list", "--json"), "[]\n"; got != want {
		t.Errorf("empty group list --json: %q", got)
	}
	if got, want := h.ok("group", "create", "ops"), "created ops 0000000000000000000000000000ab01\n"; got != want {
		t.Errorf("group create: %q, want %q", got, want)
	}
	h.ok("group", "create", "dev")
	if err := h.fake.AddMember("ops", "bob", false); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		args []string
		want string
	}{
		{[]string{"group", "list"}, "" +
			"NAME  ID            EPOCH  MEMBERS  REACH  ROLE   UNREAD  STATE\n" +
			"ops   000000000000  0      2        0/0    admin  0       ok\n" +
			"dev   000000000000  0      1        0/0    admin  0       ok\n"},
		{[]string{"group", "list", "--json"}, `[{"id":"0000000000000000000000000000ab01","name":"ops","epoch":0,"epoch_id":"0000000000000000","members":2,"admin":true,"unread":0,"state":"active","sync":{"catching_up":false,"done":0,"total":0},"reach":{"reachable":0,"others":0}},` +
			`{"id":"0000000000000000000000000000ab02","name":"dev","epoch":0,"epoch_id":"0000000000000000","members":1,"admin":true,"unread":0,"state":"active","sync":{"catching_up":false,"done":0,"total":0},"reach":{"reachable":0,"others":0}}]` + "\n"},
		{[]string{"invite", "ops"}, "grove1-ops-0003\n"},
		{[]string{"send", "ops", "deploy at noon"}, ""},
		{[]string{"log", "ops"}, "2026-01-02 03:04:09  alice  deploy at noon\n"},
		{[]string{"members", "ops"}, "" +
			"NAME         ROLE    FINGERPRINT        PEER\n" +
			"alice (you)  admin   " + apitest.Fingerprint("alice") + "  12D3KooWAAAAAAAAalice\n" +
			"bob          member  " + apitest.Fingerprint("bob") + "  12D3KooWBBBBBBBBbob\n"},
		{[]string{"peers"}, "" +
			"PEER              NAME  GROUPS  DIRECTION  TRANSPORT  ADDRESS\n" +
			"12D3KooWbob       bob   ops     -          -          /ip4/127.0.0.1/tcp/4002\n" +
			"12D3KooWstranger  -     -       -          -          /ip4/127.0.0.1/tcp/4003\n"},
		{[]string{"peers", "--json"}, `[{"id":"12D3KooWbob","addrs":["/ip4/127.0.0.1/tcp/4002","/ip4/127.0.0.1/udp/4002/quic-v1"],"name":"bob","groups":["ops"]},{"id":"12D3KooWstranger","addrs":["/ip4/127.0.0.1/tcp/4003"]}]` + "\n"},
		{[]string{"status"}, "" +
			"name         alice\n" +
			"peer id      12D3KooWAAAAAAAAalice\n" +
			"fingerprint  " + apitest.Fingerprint("alice") + "\n" +
			"addrs        /ip4/127.0.0.1/tcp/4001\n" +
			"groups       2\n" +
			"peers        2\n" +
			"started      2026-01-02 03:04:05\n" +
			"version      test\n" +
			"group ops    no other members\n" +
			"group dev    no other members\n"},
		{[]string{"status", "--json"}, `{"name":"alice","peer_id":"12D3KooWAAAAAAAAalice","fingerprint":"` + apitest.Fingerprint("alice") +
			`","addrs":["/ip4/127.0.0.1/tcp/4001"],"groups":2,"peers":2,"started_at":"2026-01-02T03:04:05Z","version":"test","pid":` + strconv.Itoa(os.Getpid()) + "}\n"},
	}
	for _, s := range steps {
		if got := h.ok(s.args...); got != s.want {
			t.Errorf("grove %s:\n%s\nwant:\n%s", strings.Join(s.args, " "), got, s.want)
		}
	}

	// send - reads the text from stdin; the final newline is not part of it.
	if out, errOut, err := h.run("two lines\nof text\n", "send", "ops", "-"); err != nil || out != "" || errOut != "" {
		t.Fatalf("send -: %v %q %q", err, out, errOut)
	}
	if err := h.fake.Receive("ops", "bob", "reply \x1b[2Jwith an escape"); err != nil {
		t.Fatal(err)
	}
	wantLog := "" +
		"2026-01-02 03:04:09  alice  deploy at noon\n" +
		"2026-01-02 03:04:10  alice  two lines\n" +
		"                            of text\n" +
		"2026-01-02 03:04:11  bob    reply \\x1b[2Jwith an escape\n"
	if !strings.Contains(h.ok("group", "list"), "ops   000000000000  0      2        0/0    admin  1       ok") {
		t.Errorf("bob's reply not counted unread:\n%s", h.ok("group", "list"))
	}
	if got := h.ok("log", "ops"); got != wantLog {
		t.Errorf("log:\n%s\nwant:\n%s", got, wantLog)
	}
	// What log showed is read.
	if !strings.Contains(h.ok("group", "list"), "ops   000000000000  0      2        0/0    admin  0       ok") {
		t.Errorf("log did not mark ops read:\n%s", h.ok("group", "list"))
	}
	if got, want := h.ok("log", "ops", "--limit", "1"), "2026-01-02 03:04:11  bob  reply \\x1b[2Jwith an escape\n"; got != want {
		t.Errorf("log --limit 1: %q", got)
	}
	wantJSON := `[{"group":"0000000000000000000000000000ab01","id":"00000000000000000000000000000005","sender":"alice","sender_peer":"12D3KooWAAAAAAAAalice","text":"two lines\nof text","time":"2026-01-02T03:04:10Z","epoch":0,"own":true},` +
		`{"group":"0000000000000000000000000000ab01","id":"00000000000000000000000000000006","sender":"bob","sender_peer":"12D3KooWBBBBBBBBbob","text":"reply \u001b[2Jwith an escape","time":"2026-01-02T03:04:11Z","epoch":0}]` + "\n"
	if got := h.ok("--home", h.home, "log", "--limit", "2", "ops", "--json"); got != wantJSON {
		t.Errorf("log --json:\n%s\nwant:\n%s", got, wantJSON)
	}

	// search across groups names the group; --group restricts.
	h.ok("send", "dev", "deploy dev first")
	if got, want := h.ok("search", "deploy"), ""+
		"2026-01-02 03:04:09  ops  alice  deploy at noon\n"+
		"2026-01-02 03:04:12  dev  alice  deploy dev first\n"; got != want {
		t.Errorf("search:\n%s\nwant:\n%s", got, want)
	}
	if got, want := h.ok("search", "deploy", "--group", "dev", "--json"), `{"hits":[{"message":{"group":"0000000000000000000000000000ab02","id":"00000000000000000000000000000007","sender":"alice","sender_peer":"12D3KooWAAAAAAAAalice","text":"deploy dev first","time":"2026-01-02T03:04:12Z","epoch":0,"own":true},"score":1}]}`+"\n"; got != want {
		t.Errorf("search --json:\n%s\nwant:\n%s", got, want)
	}
	if got, want := h.ok("search", "nothing"), "no matches\n"; got != want {
		t.Errorf("search without hits: %q", got)
	}
	if got, want := h.ok("search", "nothing", "--json"), `{"hits":[]}`+"\n"; got != want {
		t.Errorf("search --json without hits: %q", got)
	}

	// export writes JSON lines; --since filters.
	exp := h.ok("export", "ops")
	lines := strings.Split(strings.TrimSuffix(exp, "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"text":"deploy at noon"`) {
		t.Errorf("export:\n%s", exp)
	}
	if got := h.ok("export", "ops", "--since", "2026-01-02T03:04:10Z"); strings.Count(got, "\n") != 2 {
		t.Errorf("export --since RFC 3339:\n%s", got)
	}
	// Now is 04:04:05; 1h back is 03:04:05, before every message.
	if got := h.ok("export", "ops", "--since", "1h"); strings.Count(got, "\n") != 3 {
		t.Errorf("export --since 1h:\n%s", got)
	}
	if got := h.ok("export", "ops", "--since", "2026-01-03"); got != "" {
		t.Errorf("export --since tomorrow: %q", got)
	}

	if got, want := h.ok("rotate", "ops"), "rotated your keys in ops (epoch 1)\n"; got != want {
		t.Errorf("rotate: %q", got)
	}
	if got, want := h.ok("remove", "ops", "bob"), "removed bob from ops (epoch 2)\n"; got != want {
		t.Errorf("remove: %q", got)
	}
	if got, want := h.ok("leave", "dev"), "left dev\n"; got != want {
		t.Errorf("leave: %q", got)
	}
	if got, want := h.ok("group", "list"), ""+
		"NAME  ID            EPOCH  MEMBERS  REACH  ROLE   UNREAD  STATE\n"+
		"ops   000000000000  2      1        0/0    admin  0       ok\n"; got != want {
		t.Errorf("group list after rotate, remove, leave:\n%s", got)
	}

	// join prints the group it joined.
	h.fake.AddJoinable("grove1-good", "team")
	if got, want := h.ok("join", "grove1-good"), "joined team 0000000000000000000000000000cd0a (2 members)\n"; got != want {
		t.Errorf("join: %q, want %q", got, want)
	}
}

func TestCommandErrors(t *testing.T) {
	h := newHarness(t)
	h.up("--listen", "/ip4/127.0.0.1/tcp/0")
	h.ok("group", "create", "ops")

	h.fails("grove: no group \"nope\"\n", 1, "send", "nope", "hi")
	h.fails("grove: a group named \"ops\" exists\n", 1, "group", "create", "ops")
	h.fails("grove: send: empty message\n", 2, "send", "ops", "  ")
	h.fails("grove: usage: grove send GROUP TEXT [--reply ID] [--file PATH] [--json]\n", 2, "send", "ops")
	h.fails("grove: usage: grove log GROUP [--json] [--limit N] [--follow]\n", 2, "log")
	h.fails("grove: log: invalid value \"x\" for flag -limit: parse error\n", 2, "log", "ops", "--limit", "x")
	h.fails("grove: log: --limit must be positive\n", 2, "log", "ops", "--limit", "0")
	h.fails("grove: status: flag provided but not defined: -bogus\n", 2, "status", "--bogus")
	h.fails("grove: unknown command \"frob\" (see grove help)\n", 2, "frob")
	h.fails("grove: unknown group command \"delete\" (want create, list, promote, demote, rename, settings, mute or unmute)\n", 2, "group", "delete")
	h.fails("grove: export: bad --since \"yesterday\" (want an RFC 3339 time, YYYY-MM-DD or a duration like 24h)\n", 2, "export", "ops", "--since", "yesterday")
	h.fails("grove: invalid or used invite code\n", 1, "join", "grove1-bad")

	h.fake.SetAdmin("ops", false)
	h.fails("grove: only admins may remove members\n", 1, "remove", "ops", "bob")
	h.fails("grove: only admins may invite\n", 1, "invite", "ops")

	// Multi-line errors from the daemon become one line, without the
	// package prefix.
	h.fake.SetError("RequestChange", api.Errorf(api.CodeInternal, "node: rotate failed.\ncommit rejected."))
	h.fails("grove: rotate failed.; commit rejected\n", 1, "rotate", "ops")

	// join gives up with a clear message.
	h.fake.SetJoinBlocks(true)
	h.fails("grove: join: not welcomed within 100ms (is the inviter's daemon running and reachable? run join again with the same code to retry)\n", 1, "join", "grove1-x", "--timeout", "100ms")

	// send - with too much input.
	_, errOut, err := h.run(strings.Repeat("x", api.MaxTextBytes+1), "send", "ops", "-")
	if err == nil || errOut != fmt.Sprintf("grove: send: message longer than the limit of %d bytes\n", api.MaxTextBytes) {
		t.Errorf("oversized stdin: %v %q", err, errOut)
	}
	// A text that starts with a dash goes after --.
	h.ok("send", "ops", "--", "-1 is fine")
	if got := h.ok("log", "ops"); !strings.HasSuffix(got, "alice  -1 is fine\n") {
		t.Errorf("log after send --: %q", got)
	}
}

func TestInterruptedJoin(t *testing.T) {
	h := newHarness(t)
	h.up("--listen", "/ip4/127.0.0.1/tcp/0")
	h.fake.SetJoinBlocks(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(50*time.Millisecond, cancel) // as Ctrl-C does
	var errOut bytes.Buffer
	err := h.runner.Run(ctx, []string{"--home", h.home, "join", "grove1-x"}, strings.NewReader(""), io.Discard, &errOut)
	if err == nil || errOut.String() != "grove: interrupted\n" || ExitCode(err) != 1 {
		t.Fatalf("interrupted join: %v %q", err, errOut.String())
	}
}

func TestDaemonNotRunning(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(h.home, 0o700); err != nil {
		t.Fatal(err)
	}
	want := "grove: daemon not running (start it with: grove up --home " + h.home + ")\n"
	for _, args := range [][]string{
		{"status"}, {"group", "list"}, {"group", "create", "x"}, {"invite", "x"}, {"join", "c"},
		{"send", "g", "t"}, {"log", "g"}, {"search", "q"}, {"members", "g"}, {"remove", "g", "m"},
		{"rotate", "g"}, {"leave", "g"}, {"peers"}, {"export", "g"},
	} {
		h.fails(want, 1, args...)
	}
}

func TestHomeResolution(t *testing.T) {
	r := &Runner{}
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GROVE_HOME": "/g", "XDG_DATA_HOME": "/x", "HOME": "/h"}, "/g"},
		{map[string]string{"XDG_DATA_HOME": "/x", "HOME": "/h"}, "/x/grove"},
		{map[string]string{"XDG_DATA_HOME": "relative", "HOME": "/h"}, "/h/.local/share/grove"},
		{map[string]string{"HOME": "/h"}, "/h/.local/share/grove"},
	}
	for _, c := range cases {
		r.Getenv = func(k string) string { return c.env[k] }
		if got := r.defaultHome(); got != c.want {
			t.Errorf("%v: home %q, want %q", c.env, got, c.want)
		}
	}
	// --home wins over the environment, before or after the command.
	h := newHarness(t)
	h.env["GROVE_HOME"] = "/nonexistent/elsewhere"
	for _, args := range [][]string{{"--home", h.home, "status"}, {"status", "--home", h.home}} {
		var errOut bytes.Buffer
		h.runner.Run(context.Background(), args, strings.NewReader(""), io.Discard, &errOut)
		if !strings.Contains(errOut.String(), "--home "+h.home+" ") {
			t.Errorf("%v: %q", args, errOut.String())
		}
	}
	var errOut bytes.Buffer
	h.runner.Run(context.Background(), []string{"status"}, strings.NewReader(""), io.Discard, &errOut)
	if !strings.Contains(errOut.String(), "--home /nonexistent/elsewhere ") {
		t.Errorf("$GROVE_HOME ignored: %q", errOut.String())
	}
}

func TestInit(t *testing.T) {
	h := newHarness(t)
	out, _, err := h.run("", "init", "--name", "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := "initialised alice in " + h.home + "\n" +
		"peer id      12D3KooWAAAAAAAAalice\n" +
		"fingerprint  " + apitest.Fingerprint("alice") + "\n" +
		"database     encrypted, key in " + filepath.Join(h.home, StoreKeyFile) + " (file permissions only)\n" +
		"start the daemon with: grove up --home " + h.home + "\n"
	if out != want {
		t.Errorf("init:\n%s\nwant:\n%s", out, want)
	}
	if len(h.configs) != 1 || h.configs[0].Name != "alice" || h.configs[0].Home != h.home || len(h.configs[0].Listen) != 0 {
		t.Errorf("init config: %+v", h.configs)
	}
	if !h.daemon.started || !h.daemon.closed {
		t.Error("init did not start and close the device")
	}
	if fi, err := os.Stat(h.home); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("home mode: %v %v", fi, err)
	}
	h.fails("grove: init: --name is required\n", 2, "init")

	// A runner without a daemon refuses honestly.
	var errOut bytes.Buffer
	err = (&Runner{}).Run(context.Background(), []string{"--home", h.home, "init", "--name", "a"}, nil, io.Discard, &errOut)
	if err == nil || errOut.String() != "grove: this build of grove cannot run a daemon\n" {
		t.Errorf("init without daemon: %v %q", err, errOut.String())
	}
}

func TestUp(t *testing.T) {
	h := newHarness(t)
	h.fails("grove: no grove home at "+h.home+" (create one with: grove init --home "+h.home+" --name NAME)\n", 1, "up")
	h.fails("grove: up: --metrics: 0.0.0.0:9100 is not a loopback address (use 127.0.0.1 or [::1])\n", 2, "up", "--metrics", "0.0.0.0:9100")
	h.fails("grove: up: --metrics: 192.168.1.5:9100 is not a loopback address (use 127.0.0.1 or [::1])\n", 2, "up", "--metrics", "192.168.1.5:9100")
	h.fails("grove: up: --metrics: example.com:9100 is not a loopback address (use 127.0.0.1 or [::1])\n", 2, "up", "--metrics", "example.com:9100")
	h.fails("grove: up: --metrics: want HOST:PORT on a loopback address: address 9100: missing port in address\n", 2, "up", "--metrics", "9100")
	_, errOut, err := h.run("", "up", "--listen", "not-a-multiaddr")
	if ExitCode(err) != 2 || !strings.HasPrefix(errOut, "grove: up: bad --listen \"not-a-multiaddr\"") {
		t.Errorf("bad --listen: %q", errOut)
	}
	h.fails("grove: up: --bootstrap \"/ip4/127.0.0.1/tcp/1\" has no /p2p/PEER_ID\n", 2, "up", "--bootstrap", "/ip4/127.0.0.1/tcp/1")
	h.env["GROVE_LOG"] = "loud"
	h.fails("grove: up: GROVE_LOG=\"loud\": want debug, info, warn or error\n", 2, "up")
	delete(h.env, "GROVE_LOG")
	if len(h.configs) != 0 {
		t.Fatal("daemon created despite bad flags")
	}

	boot := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
	h.up("--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--bootstrap", boot, "--mdns", "--metrics", "127.0.0.1:0")
	cfg := h.configs[0]
	if cfg.Home != h.home || cfg.Name != "" || !cfg.MDNS || strings.Join(cfg.Listen, " ") != "/ip4/127.0.0.1/tcp/0 /ip4/127.0.0.1/udp/0/quic-v1" ||
		len(cfg.Bootstrap) != 1 || cfg.Bootstrap[0] != boot {
		t.Errorf("daemon config: %+v", cfg)
	}
	sock := filepath.Join(h.home, SocketName)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v %v", fi, err)
	}

	// Metrics are served on the loopback address the log names.
	m := regexp.MustCompile(`metrics=(http://127\.0\.0\.1:\d+/metrics)`).FindStringSubmatch(h.log.String())
	if m == nil {
		t.Fatalf("no metrics URL in the log:\n%s", h.log)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantMetrics := "# HELP grove_messages_in_total MLS messages processed.\n# TYPE grove_messages_in_total counter\ngrove_messages_in_total 7\n" +
		"# HELP grove_peers Connected peers.\n# TYPE grove_peers gauge\ngrove_peers 2\n"
	if string(body) != wantMetrics || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("metrics:\n%s", body)
	}

	// A second daemon on the same home is refused.
	h.fails("grove: a daemon is already running in "+h.home+"\n", 1, "up", "--listen", "/ip4/127.0.0.1/tcp/0")
	h.fails("grove: init: a daemon is running in "+h.home+"; stop it first\n", 1, "init", "--name", "x")

	h.stopUp()
	if !h.daemon.closed {
		t.Error("daemon not closed on shutdown")
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after shutdown: %v", err)
	}
	if !strings.Contains(h.log.String(), "shutting down") {
		t.Errorf("log:\n%s", h.log)
	}

	// Without --listen, up uses the documented defaults.
	h.configs = nil
	h.up()
	if strings.Join(h.configs[0].Listen, " ") != strings.Join(DefaultListen, " ") {
		t.Errorf("default listen: %v", h.configs[0].Listen)
	}
}

func TestHelp(t *testing.T) {
	h := newHarness(t)
	out := h.ok("help")
	for _, c := range commands {
		if !strings.Contains(out, "  "+c.name+" "+c.args) {
			t.Errorf("help lacks %q", c.name)
		}
	}
	if got, want := h.ok("help", "send"), "usage: grove [--home DIR] send GROUP TEXT [--reply ID] [--file PATH] [--json]\n\nsend TEXT to GROUP (TEXT - reads standard input)\n\nPrints nothing when a member is reachable. With no member reachable the\nmessage is queued and goes out once one is: send then prints \"queued: no\nmember reachable\". --json prints the message, with \"queued\":true then.\nTEXT is UTF-8 text of at most 60000 bytes.\n  --reply ID   reply to the message ID (as log --json shows it, or its\n               first digits)\n  --file PATH  send the file at PATH (at most 100 MiB; TEXT optional)\n"; got != want {
		t.Errorf("help send: %q", got)
	}
	// The documented default listen addresses are the ones up uses.
	if got := h.ok("help", "up"); !strings.Contains(got, DefaultListen[0]+" and "+DefaultListen[1]) || !strings.Contains(got, "loopback addresses only") {
		t.Errorf("help up:\n%s", got)
	}
	if got := h.ok("log", "-h"); !strings.HasPrefix(got, "usage: grove [--home DIR] log GROUP") {
		t.Errorf("log -h: %q", got)
	}
	_, errOut, err := h.run("")
	if ExitCode(err) != 2 || !strings.HasSuffix(errOut, "grove: no command (see grove help)\n") {
		t.Errorf("no command: %q", errOut)
	}
}

func TestSanitize(t *testing.T) {
	cases := map[string]string{
		"plain":               "plain",
		"a\x1b[31mred":        `a\x1b[31mred`,
		"new\nline":           `new\x0aline`,
		"bidi \u202egnp.exe":  `bidi \u202egnp.exe`,
		"bad \xff utf8":       "bad \uFFFD utf8",
		"c1 \u009b control":   `c1 \x9b control`,
		"ünïcödé and emoji 🌳": "ünïcödé and emoji 🌳",
	}
	for in, want := range cases {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sanitizeText("a\nb\tc\x07"); got != "a\nb    c\\x07" {
		t.Errorf("sanitizeText: %q", got)
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 1 || ExitCode(usagef("x")) != 2 || ExitCode(fmt.Errorf("w: %w", usagef("x"))) != 2 {
		t.Error("exit codes wrong")
	}
}

// TestCutOffAndChanges: a group with no member reachable is named under
// the group list and in status, a send to it says it is queued (and
// --json carries queued), and a rotation the group does not confirm in
// time is reported as requested, with what it waits for.
func TestCutOffAndChanges(t *testing.T) {
	h := newHarness(t)
	h.up()
	h.ok("group", "create", "ops")
	if err := h.fake.AddMember("ops", "bob", false); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	if err := h.fake.SetReach("ops", api.Reach{Others: 1, CutOffSince: since, Waiting: 2}); err != nil {
		t.Fatal(err)
	}
	if got, want := h.ok("send", "ops", "hi"), "queued: no member reachable\n"; got != want {
		t.Errorf("send while cut off: %q, want %q", got, want)
	}
	if got := h.ok("send", "ops", "hi", "--json"); !strings.Contains(got, `"queued":true`) {
		t.Errorf("send --json while cut off: %q", got)
	}
	list := h.ok("group", "list")
	if !strings.Contains(list, " 0/1 ") || !strings.Contains(list, "ops: no member reachable since ") || !strings.Contains(list, ", 4 messages waiting") {
		t.Errorf("group list while cut off:\n%s", list)
	}
	if st := h.ok("status"); !strings.Contains(st, "group ops") || !strings.Contains(st, "no member reachable since") {
		t.Errorf("status while cut off:\n%s", st)
	}
	h.fake.SetReach("ops", api.Reach{Others: 1, Reachable: 1})
	if got := h.ok("send", "ops", "hi"); got != "" {
		t.Errorf("send while reachable: %q, want nothing", got)
	}
	if st := h.ok("status"); !strings.Contains(st, "1 of 1 members reachable") {
		t.Errorf("status while reachable:\n%s", st)
	}

	h.fake.SetChangesStuck(true)
	if got, want := h.ok("rotate", "ops", "--timeout", "50ms"), "requested; not yet committed (still waiting for this device's turn to commit)\n"; got != want {
		t.Errorf("rotate not confirmed: %q, want %q", got, want)
	}
	if got, want := h.ok("remove", "ops", "bob", "--timeout", "0"), "requested; not yet committed\n"; got != want {
		t.Errorf("remove without waiting: %q, want %q", got, want)
	}
}
