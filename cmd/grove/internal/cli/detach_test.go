package cli

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"grove/node/api"
)

// TestDetachAndDown starts a real daemon with up --detach (the test binary
// runs as grove) and stops it with down: no process and no socket remain.
func TestDetachAndDown(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemon in a child process; skipped with -short")
	}
	d := newDevice(t, "alice")
	d.runner.testingOnlyDetachEnv = []string{"GROVE_TEST_MAIN=1"}
	out := d.ok("up", "--detach", "--listen", "/ip4/127.0.0.1/tcp/0")
	m := regexp.MustCompile(`^grove daemon running \(pid (\d+)\), logging to (.+)\nstop it with: grove down --home (.+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up --detach printed %q", out)
	}
	pid, _ := strconv.Atoi(m[1])
	// Reap the child whatever happens (it is this process's child).
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	})
	if m[2] != filepath.Join(d.home, LogName) || m[3] != d.home {
		t.Errorf("log %q, home %q", m[2], m[3])
	}
	if pid == os.Getpid() {
		t.Fatal("up --detach ran the daemon in this process")
	}
	var st api.Status
	if err := json.Unmarshal([]byte(d.ok("status", "--json")), &st); err != nil || st.PID != pid || st.Name != "alice" {
		t.Fatalf("status of the detached daemon: %+v %v", st, err)
	}
	// A second detached start is refused at once.
	if got := d.fail("", "up", "--detach"); got != "grove: a daemon is already running in "+d.home+"\n" {
		t.Errorf("second up --detach: %q", got)
	}

	if got, want := d.ok("down"), "stopped (pid "+m[1]+")\n"; got != want {
		t.Errorf("down: %q, want %q", got, want)
	}
	if !processGone(pid) {
		t.Errorf("pid %d still runs after down", pid)
	}
	if _, err := os.Lstat(filepath.Join(d.home, SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after down: %v", err)
	}
	log, _ := os.ReadFile(filepath.Join(d.home, LogName))
	if !strings.Contains(string(log), "grove up") || !strings.Contains(string(log), "shutting down (grove down)") {
		t.Errorf("daemon log:\n%s", log)
	}
	// Down again: nothing to stop, and it says so.
	if got := d.ok("down"); got != "no daemon running\n" {
		t.Errorf("second down: %q", got)
	}
	// The home works with a foreground daemon afterwards.
	d.upInProcess()
	d.ok("status")
}

// TestDetachReportsStartFailure checks that up --detach reports a daemon
// that exits during start, with the end of its log.
func TestDetachReportsStartFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("child process; skipped with -short")
	}
	d := newDevice(t, "alice")
	d.runner.testingOnlyDetachEnv = []string{"GROVE_TEST_MAIN=1"}
	// The metrics port is taken, which the daemon finds only once started.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	start := time.Now()
	out, got, err := d.run("", "up", "--detach", "--listen", "/ip4/127.0.0.1/tcp/0", "--metrics", taken.Addr().String())
	if err == nil {
		if m := regexp.MustCompile(`pid (\d+)`).FindStringSubmatch(out); m != nil {
			pid, _ := strconv.Atoi(m[1])
			syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatalf("up --detach succeeded: %q", out)
	}
	if !strings.HasPrefix(got, "grove: the daemon exited during start (exit status 1); its log "+filepath.Join(d.home, LogName)+" ends: grove: up: metrics: ") {
		t.Errorf("stderr %q", got)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

// TestDownInProcess checks down against a daemon in this process (the
// harness's), which only has to stop serving and remove its socket.
func TestDownInProcess(t *testing.T) {
	h := newHarness(t)
	h.up()
	if got, want := h.ok("down", "--json"), `{"stopped":true,"pid":`+strconv.Itoa(os.Getpid())+"}\n"; got != want {
		t.Errorf("down --json: %q, want %q", got, want)
	}
	h.stopUp()
	if !h.daemon.closed {
		t.Error("daemon not closed")
	}
	if got := h.ok("down", "--json"); got != `{"stopped":false}`+"\n" {
		t.Errorf("down --json with no daemon: %q", got)
	}
}

// TestDetachPassphraseHome checks up --detach on a home whose store key is
// sealed by a passphrase: without a terminal and without a passphrase file
// it says what to give (and starts nothing); a wrong file is refused before
// anything starts; --passphrase-file and GROVE_PASSPHRASE_FILE reach the
// daemon, which then serves and stops with down.
func TestDetachPassphraseHome(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemon in a child process; skipped with -short")
	}
	dir := shortTempDir(t)
	pass, wrong := filepath.Join(dir, "pass"), filepath.Join(dir, "wrong")
	if err := os.WriteFile(pass, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, []byte("incorrect\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	d := &device{t: t, name: "alice", home: filepath.Join(dir, "alice"),
		runner: &Runner{NewDaemon: fastDaemon, Getenv: func(k string) string { return env[k] }, Location: time.UTC, Keyring: &fakeKeyring{unavailable: true}}}
	d.ok("init", "--name", "alice", "--passphrase-file", pass)
	d.runner.testingOnlyDetachEnv = []string{"GROVE_TEST_MAIN=1"}
	listen := []string{"--listen", "/ip4/127.0.0.1/tcp/0"}

	want := "grove: up: the database key of this home is sealed by a passphrase, and a detached daemon has no terminal to ask for it: give --passphrase-file FILE (or set GROVE_PASSPHRASE_FILE), or run up --detach in a terminal\n"
	if got := d.fail("", append([]string{"up", "--detach"}, listen...)...); got != want {
		t.Errorf("up --detach without a passphrase: %q", got)
	}
	if got := d.fail("", append([]string{"up", "--detach", "--passphrase-file", wrong}, listen...)...); got != "grove: up: wrong passphrase\n" {
		t.Errorf("up --detach with a wrong passphrase file: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(d.home, SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused detach left a socket: %v", err)
	}

	start := func(args ...string) {
		t.Helper()
		out := d.ok(append(append([]string{"up", "--detach"}, listen...), args...)...)
		m := regexp.MustCompile(`^grove daemon running \(pid (\d+)\)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("up --detach printed %q", out)
		}
		pid, _ := strconv.Atoi(m[1])
		t.Cleanup(func() {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		})
		if st := d.status(); st.PID != pid || st.Name != "alice" {
			t.Fatalf("status of the detached daemon: %+v", st)
		}
		if got := d.ok("down"); got != "stopped (pid "+m[1]+")\n" {
			t.Errorf("down: %q", got)
		}
	}
	start("--passphrase-file", pass)
	env["GROVE_PASSPHRASE_FILE"] = pass
	d.runner.testingOnlyDetachEnv = append(d.runner.testingOnlyDetachEnv, "GROVE_PASSPHRASE_FILE="+pass)
	start()
}

// TestDetachAsksPassphraseOnTerminal runs up --detach in tmux on a
// passphrase-protected home: it asks for the passphrase on the terminal
// and hands it to the daemon, which starts (a pipe, not a file).
func TestDetachAsksPassphraseOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemon and tmux; skipped with -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed, and CI must run this test (.ci/run installs it)")
		}
		t.Skip("tmux is not installed: apt-get install tmux")
	}
	dir := shortTempDir(t)
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &device{t: t, name: "alice", home: filepath.Join(dir, "alice"),
		runner: &Runner{NewDaemon: fastDaemon, Getenv: func(string) string { return "" }, Location: time.UTC, Keyring: &fakeKeyring{unavailable: true}}}
	d.ok("init", "--name", "alice", "--passphrase-file", pass)
	sock := filepath.Join(dir, "tmux.sock")
	tmux := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v %s", args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { exec.Command("tmux", "-S", sock, "kill-server").Run() })
	tmux("new-session", "-d", "-s", "up", "-x", "200", "-y", "20", "sh", "-c",
		"GROVE_TEST_MAIN=1 "+os.Args[0]+" --home "+d.home+" up --detach --listen /ip4/127.0.0.1/tcp/0; echo EXIT=$?; sleep 600")
	waitUntil(t, 20*time.Second, "the passphrase prompt", func() bool {
		return strings.Contains(tmux("capture-pane", "-p", "-t", "up"), "passphrase for "+d.home+":") // the capture drops the trailing space
	})
	tmux("send-keys", "-t", "up", "-l", "correct horse battery")
	tmux("send-keys", "-t", "up", "Enter")
	waitUntil(t, 30*time.Second, "the detached daemon to start", func() bool {
		return strings.Contains(tmux("capture-pane", "-p", "-t", "up"), "EXIT=")
	})
	screen := tmux("capture-pane", "-p", "-t", "up")
	if !strings.Contains(screen, "grove daemon running (pid ") || !strings.Contains(screen, "EXIT=0") {
		t.Fatalf("up --detach in a terminal:\n%s", screen)
	}
	st := d.status()
	t.Cleanup(func() { syscall.Kill(st.PID, syscall.SIGKILL) })
	if got := d.ok("down"); got != "stopped (pid "+strconv.Itoa(st.PID)+")\n" {
		t.Errorf("down: %q", got)
	}
}
