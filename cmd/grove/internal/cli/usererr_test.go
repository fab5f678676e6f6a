package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"os"
)

// fail runs a command on d that must fail and returns its stderr.
func (d *device) fail(stdin string, args ...string) string {
	d.t.Helper()
	out, errOut, err := d.run(stdin, args...)
	if err == nil {
		d.t.Fatalf("%s: grove %s succeeded: %q", d.name, strings.Join(args, " "), out)
	}
	return errOut
}

// noInternals fails the test if a message shows a Go package prefix.
func noInternals(t *testing.T, msg string) {
	t.Helper()
	for _, p := range []string{"node:", "store:", "api:", "mls:", "p2p:", "pebble:"} {
		if strings.Contains(msg, p) {
			t.Errorf("message shows %q: %q", p, msg)
		}
	}
}

// mistype changes one character of an invite code to another valid one.
func mistype(code string) string {
	i := len(code) / 2
	c := byte('a')
	if code[i] == 'a' {
		c = 'b'
	}
	return code[:i] + string(c) + code[i+1:]
}

func TestErrorsInUserTerms(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := opsPair(t, false)
	code := strings.TrimSpace(alice.ok("invite", "ops"))

	t.Run("mistyped invite code", func(t *testing.T) {
		got := bob.fail("", "join", mistype(code))
		want := "grove: that invite code is damaged or mistyped (checksum mismatch): copy it again\n"
		if got != want {
			t.Errorf("stderr %q, want %q", got, want)
		}
	})
	t.Run("not an invite code", func(t *testing.T) {
		got := bob.fail("", "join", "hello")
		if want := "grove: that is not a grove invite code (invite codes start with \"grove-\")\n"; got != want {
			t.Errorf("stderr %q, want %q", got, want)
		}
	})
	t.Run("init on a named home", func(t *testing.T) {
		alice.stop()
		got := alice.fail("", "init", "--name", "mallory")
		want := "grove: " + alice.home + " already holds the device \"alice\"; init does not rename or replace it (use another --home for a second device)\n"
		if got != want {
			t.Errorf("stderr %q, want %q", got, want)
		}
	})
	t.Run("database held by another daemon", func(t *testing.T) {
		// A daemon in another process whose socket was deleted still
		// holds the database.
		child := alice.upChild()
		if err := os.Remove(filepath.Join(alice.home, SocketName)); err != nil {
			t.Fatal(err)
		}
		defer func() { child.Process.Kill(); child.Wait() }()
		got := alice.fail("", "up", "--listen", "/ip4/127.0.0.1/tcp/0")
		want := "grove: another grove daemon is already running for this home (" + alice.home + "): stop it first (grove down)\n"
		if got != want {
			t.Errorf("stderr %q, want %q", got, want)
		}
	})
	t.Run("inviter not running", func(t *testing.T) {
		got := bob.fail("", "join", code, "--timeout", "20s")
		got = got[strings.LastIndex(got[:len(got)-1], "\n")+1:] // after the progress lines
		if !strings.HasPrefix(got, "grove: could not reach the inviter's device at /ip4/127.0.0.1/tcp/") ||
			!strings.HasSuffix(got, ": is its daemon running and reachable?\n") {
			t.Errorf("stderr %q", got)
		}
		noInternals(t, got)
	})
}

func TestPackagePrefixesDropped(t *testing.T) {
	h := newHarness(t)
	h.up()
	h.fake.SetError("CreateGroup", errString("create: node: open store: store: disk full"))
	h.fails("grove: create: open store: disk full\n", 1, "group", "create", "x")
}

type errString string

func (e errString) Error() string { return string(e) }
