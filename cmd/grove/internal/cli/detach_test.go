package cli

import (
	"encoding/json"
	"errors"
	"net"
	"os"
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
