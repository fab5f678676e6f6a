package chat_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"grove/cmd/grove/internal/cli"
	"grove/node"
	"grove/node/api"
	"grove/p2p"
)

// This file drives the real `grove chat` binary in tmux against two real
// daemons (package node) talking over 127.0.0.1. The daemons run in this
// process through cli.Runner with finality shortened from minutes to
// fractions of a second, so that a join completes quickly; the chat
// windows run the grove binary built from this tree.

// fastNode is the real node; the e2e test needs no metrics.
type fastNode struct{ *node.Node }

func (fastNode) Metrics() []cli.Metric { return nil }

func fastDaemon(cfg cli.DaemonConfig) (cli.Daemon, error) {
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	n, err := node.New(node.Config{
		Home: cfg.Home, Name: cfg.Name, Logger: cfg.Logger, StoreKey: cfg.StoreKey,
		P2P:           p2p.Config{Listen: listen},
		FinalityAge:   400 * time.Millisecond,
		FinalityGrace: 100 * time.Millisecond,
		TipInterval:   200 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	return fastNode{n}, nil
}

// shortDir is a temporary directory with a short path: the API socket's
// path must fit sun_path.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gchat")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startDevice inits a device called name and runs its daemon in this
// process until the test ends; it returns the home and a client.
func startDevice(t *testing.T, name string) (string, *api.Client) {
	t.Helper()
	home := filepath.Join(shortDir(t), name)
	r := &cli.Runner{NewDaemon: fastDaemon, Getenv: func(string) string { return "" }, Keyring: cli.NoKeyring}
	var errOut strings.Builder
	if err := r.Run(context.Background(), []string{"--home", home, "init", "--name", name}, strings.NewReader(""), io.Discard, &errOut); err != nil {
		t.Fatalf("%s: init: %v %s", name, err, errOut.String())
	}
	ready := make(chan struct{})
	r.Ready = func(string) { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &lockedBuilder{}
	go func() {
		done <- r.Run(ctx, []string{"--home", home, "up", "--listen", "/ip4/127.0.0.1/tcp/0", "--gui", "off"}, strings.NewReader(""), io.Discard, logs)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("%s: up: %v\n%s", name, err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: daemon not ready", name)
	}
	c, err := api.Dial(context.Background(), filepath.Join(home, cli.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: up: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s daemon log:\n%s", name, logs)
		}
	})
	return home, c
}

// tmux runs a private tmux server for the test.
type tmux struct {
	t    *testing.T
	sock string
}

func newTmux(t *testing.T) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		// CI installs it (.ci/run); so may a root user here. Only a
		// developer without root and without tmux skips.
		switch {
		case os.Getenv("CI") == "true":
			t.Fatal("tmux is not installed, and CI must run the terminal end-to-end tests (.ci/run installs it)")
		case os.Geteuid() == 0:
			if out, err := exec.Command("apt-get", "install", "-y", "-qq", "tmux").CombinedOutput(); err != nil {
				t.Fatalf("tmux is not installed and apt-get install tmux failed: %v\n%s", err, out)
			}
		default:
			t.Skip("tmux is not installed (and not root to install it): the terminal end-to-end tests need it; apt-get install tmux")
		}
	}
	x := &tmux{t: t, sock: filepath.Join(shortDir(t), "tmux.sock")}
	t.Cleanup(func() { exec.Command("tmux", "-S", x.sock, "kill-server").Run() })
	return x
}

func (x *tmux) cmd(args ...string) string {
	x.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", x.sock}, args...)...).CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// window starts shell command line in a new detached session of the given
// size. The shell reports the exit and stays, so that the screen after
// the program ends can be checked.
func (x *tmux) window(name string, w, h int, line string) {
	x.t.Helper()
	x.cmd("new-session", "-d", "-s", name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h),
		"sh", "-c", line+"; echo EXIT=$?; sleep 600")
}

func (x *tmux) capture(name string) string { return x.cmd("capture-pane", "-p", "-t", name) }

func (x *tmux) keys(name string, keys ...string) {
	x.cmd(append([]string{"send-keys", "-t", name}, keys...)...)
}

// waitScreen waits until window name shows every one of want.
func (x *tmux) waitScreen(name string, want ...string) string {
	x.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := x.capture(name)
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("window %s never showed %q; screen:\n%s", name, want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// layoutError reports how the chat screen fails to fill w x h with its
// structure: title first, the group list's separator on every body row,
// the input line and the status bar last; nil if it does not.
func layoutError(screen string, w, h int) error {
	lines := strings.Split(strings.TrimSuffix(screen, "\n"), "\n")
	if len(lines) != h {
		return fmt.Errorf("%d lines on a %dx%d screen", len(lines), w, h)
	}
	for i, l := range lines {
		if n := utf8.RuneCountInString(l); n > w {
			return fmt.Errorf("line %d is %d wide on a %d-wide screen", i, n, w)
		}
	}
	if !strings.HasPrefix(lines[0], " grove · ") {
		return fmt.Errorf("title line %q", lines[0])
	}
	for i := 1; i < h-3; i++ {
		if r := []rune(lines[i]); len(r) <= 20 || r[20] != '│' {
			return fmt.Errorf("body line %d lacks the list separator at column 20: %q", i, lines[i])
		}
	}
	if !strings.HasPrefix(lines[h-2], "> ") {
		return fmt.Errorf("input line %q", lines[h-2])
	}
	if !strings.Contains(lines[h-1], " peers ") {
		return fmt.Errorf("status line %q", lines[h-1])
	}
	return nil
}

// waitLayout waits until window name shows want in an intact w x h layout
// (a resize is redrawn once the program has seen SIGWINCH).
func waitLayout(x *tmux, name string, w, h int, want string) string {
	x.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := x.capture(name)
		err := layoutError(s, w, h)
		if err == nil && strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("window %s: layout at %dx%d: %v (want %q):\n%s", name, w, h, err, want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEndToEndChatInTmux(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons and tmux; skipped with -short")
	}
	x := newTmux(t)
	bin := filepath.Join(t.TempDir(), "grove")
	if out, err := exec.Command("go", "build", "-o", bin, "grove/cmd/grove").CombinedOutput(); err != nil {
		t.Fatalf("building grove: %v\n%s", err, out)
	}

	// Without a daemon, chat says so and exits 1. (The home exists: for a
	// missing one, grove says to run init instead.)
	x.window("nodaemon", 80, 24, bin+" --home "+shortDir(t)+" chat")
	x.waitScreen("nodaemon", "grove: daemon not running (start it with: grove up --home", "EXIT=1")

	aliceHome, alice := startDevice(t, "alice")
	bobHome, bob := startDevice(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := alice.CreateGroup(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatalf("bob joins: %v", err)
	}

	x.window("alice", 80, 24, "NO_COLOR=1 "+bin+" --home "+aliceHome+" chat team")
	x.window("bob", 80, 24, bin+" --home "+bobHome+" chat team")
	waitLayout(x, "alice", 80, 24, "2 members")
	x.waitScreen("bob", "#team", "2 members")

	// NO_COLOR (alice's window) means no colour, and only that: bob's
	// window has colours.
	if sgrColour(x.cmd("capture-pane", "-p", "-e", "-t", "alice")) {
		t.Fatalf("colours in the NO_COLOR window:\n%q", x.cmd("capture-pane", "-p", "-e", "-t", "alice"))
	}
	if !sgrColour(x.cmd("capture-pane", "-p", "-e", "-t", "bob")) {
		t.Fatalf("no colours in the coloured window:\n%q", x.cmd("capture-pane", "-p", "-e", "-t", "bob"))
	}

	// Typed in alice's window, the message shows in bob's.
	x.keys("alice", "-l", "hello bob, from the e2e terminal")
	x.keys("alice", "Enter")
	x.waitScreen("alice", "> alice: hello bob, from the e2e terminal")
	x.waitScreen("bob", "alice: hello bob, from the e2e terminal")
	x.keys("bob", "-l", "hi alice")
	x.keys("bob", "Enter")
	x.waitScreen("alice", "bob: hi alice")

	// /search finds it and Enter jumps to it.
	x.keys("bob", "-l", "/search terminal")
	x.keys("bob", "Enter")
	x.waitScreen("bob", `search "terminal": 1 hit ·`, "▶ #team", "alice: hello bob, from the e2e")
	x.keys("bob", "Enter")
	s := x.waitScreen("bob", "alice: hello bob, from the e2e terminal", "bob: hi alice")
	if strings.Contains(s, "search \"terminal\"") {
		t.Fatalf("still in the results pane after Enter:\n%s", s)
	}

	// Resizing keeps the layout intact, larger and back to 80x24.
	x.cmd("resize-window", "-t", "alice", "-x", "120", "-y", "40")
	waitLayout(x, "alice", 120, 40, "bob: hi alice")
	x.cmd("resize-window", "-t", "alice", "-x", "80", "-y", "24")
	waitLayout(x, "alice", 80, 24, "bob: hi alice")

	// /members shows fingerprints; both devices agree on them.
	x.keys("alice", "-l", "/members")
	x.keys("alice", "Enter")
	ms, err := bob.Members(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	for _, m := range ms {
		fps = append(fps, m.Fingerprint)
	}
	x.waitScreen("alice", fps...)

	// Quitting restores the terminal: the shell's output is back, the
	// chat screen is gone.
	x.keys("alice", "C-c")
	s = x.waitScreen("alice", "EXIT=0")
	if strings.Contains(s, "│") || strings.Contains(s, "#team") {
		t.Fatalf("chat screen left behind after exit:\n%s", s)
	}
	x.keys("bob", "-l", "/quit")
	x.keys("bob", "Enter")
	x.waitScreen("bob", "EXIT=0")
}

// lockedBuilder collects a daemon's log from its goroutine.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var sgrSeq = regexp.MustCompile(`\x1b\[([0-9;:]*)m`)

// sgrColour reports whether s sets a foreground or background colour.
func sgrColour(s string) bool {
	for _, m := range sgrSeq.FindAllStringSubmatch(s, -1) {
		for _, p := range strings.FieldsFunc(m[1], func(r rune) bool { return r == ';' || r == ':' }) {
			n, err := strconv.Atoi(p)
			if err == nil && (n >= 30 && n <= 38 || n >= 40 && n <= 48 || n >= 90 && n <= 107) {
				return true
			}
		}
	}
	return false
}
