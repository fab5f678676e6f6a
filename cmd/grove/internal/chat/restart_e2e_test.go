package chat_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grove/node/api"
)

// daemonProc is a grove daemon run as a process of the grove binary, so
// that the test can kill it as a crash or an OOM kill would.
type daemonProc struct {
	t         *testing.T
	bin, home string
	cmd       *exec.Cmd
	logs      *lockedBuilder
}

func (d *daemonProc) start() {
	d.t.Helper()
	d.logs = &lockedBuilder{}
	d.cmd = exec.Command(d.bin, "--home", d.home, "up", "--listen", "/ip4/127.0.0.1/tcp/0")
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := api.Dial(context.Background(), filepath.Join(d.home, "grove.sock"))
		if err == nil {
			_, err = c.Status(context.Background())
			c.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon not serving: %v\n%s", err, d.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the daemon with SIGKILL: no shutdown, the socket file stays.
func (d *daemonProc) kill() {
	d.t.Helper()
	if d.cmd == nil || d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Kill()
	d.cmd.Wait()
}

// TestChatSurvivesDaemonRestart runs `grove chat` in tmux and kills its
// daemon (SIGKILL) twice while a line is being typed. The chat stays
// open, keeps the line, and says the daemon is unreachable. A line
// entered while the daemon is down is sent once it is back; a line typed
// across the restart and entered after it is sent at once. Each reaches
// the daemon's history exactly once.
func TestChatSurvivesDaemonRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemon and tmux; skipped with -short")
	}
	x := newTmux(t)
	bin := filepath.Join(t.TempDir(), "grove")
	if out, err := exec.Command("go", "build", "-o", bin, "grove/cmd/grove").CombinedOutput(); err != nil {
		t.Fatalf("building grove: %v\n%s", err, out)
	}
	home := filepath.Join(shortDir(t), "alice")
	if out, err := exec.Command(bin, "--home", home, "init", "--name", "alice", "--key-file").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	d := &daemonProc{t: t, bin: bin, home: home}
	d.start()
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs)
		}
	})
	history := func() []string {
		t.Helper()
		c, err := api.Dial(context.Background(), filepath.Join(home, "grove.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ms, err := c.Log(context.Background(), "team", 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Text)
		}
		return out
	}
	c, err := api.Dial(context.Background(), filepath.Join(home, "grove.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateGroup(context.Background(), "team"); err != nil {
		t.Fatal(err)
	}
	c.Close()

	x.window("chat", 80, 24, "NO_COLOR=1 "+bin+" --home "+home+" chat team")
	x.waitScreen("chat", "#team", "1 member ")

	// Killed mid-typing; the rest of the line typed while it is down,
	// and entered then: it waits.
	x.keys("chat", "-l", "hello wor")
	x.waitScreen("chat", "> hello wor")
	d.kill()
	x.waitScreen("chat", "OFFLINE: daemon not reachable: reconnecting")
	x.keys("chat", "-l", "ld")
	x.waitScreen("chat", "> hello world")
	x.keys("chat", "Enter")
	x.waitScreen("chat", "1 message waiting: sent once the daemon is back")
	if s := x.capture("chat"); strings.Contains(s, "alice: hello world") {
		t.Fatalf("the line shows as sent while the daemon is down:\n%s", s)
	}
	d.start()
	s := x.waitScreen("chat", "> alice: hello world")
	if strings.Contains(s, "OFFLINE") {
		t.Fatalf("still offline after the daemon is back:\n%s", s)
	}
	if got := history(); len(got) != 1 || got[0] != "hello world" {
		t.Fatalf("history after the first restart: %q", got)
	}

	// Killed and restarted while a line is half typed; entered after the
	// chat has reconnected, it goes out at once.
	x.keys("chat", "-l", "typed across ")
	x.waitScreen("chat", "> typed across")
	d.kill()
	x.waitScreen("chat", "OFFLINE")
	d.start()
	x.waitScreen("chat", "reconnected to the daemon")
	x.keys("chat", "-l", "a restart")
	x.keys("chat", "Enter")
	x.waitScreen("chat", "> alice: typed across a restart")
	if got := history(); len(got) != 2 || got[1] != "typed across a restart" {
		t.Fatalf("history after the second restart: %q", got)
	}

	x.keys("chat", "C-c")
	x.waitScreen("chat", "EXIT=0")
}
