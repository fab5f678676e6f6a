package cli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"grove/node/api"
)

// newDeviceWith makes a device whose init takes args (a name or a link),
// and returns what init printed.
func newDeviceWith(t *testing.T, name string, args ...string) (*device, string, error) {
	d := &device{t: t, name: name, home: filepath.Join(shortTempDir(t), name),
		runner: &Runner{NewDaemon: fastDaemon, Getenv: func(string) string { return "" }, Location: time.UTC, Keyring: &fakeKeyring{unavailable: true}}}
	out, errOut, err := d.run("", append([]string{"init"}, args...)...)
	if err != nil {
		return d, out, &cliError{err: err, stderr: errOut}
	}
	return d, out, nil
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.stderr + e.err.Error() }

// TestDevicesCLI, real daemons: alice links a phone to her laptop with
// device link / init --link; bob sees one person with two devices; a
// replayed code is refused; device list; a backup restores into a fresh
// home (a wrong passphrase is refused) whose history is searchable once it
// is back in the group; device revoke removes the phone.
func TestDevicesCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	laptop, _, err := newDeviceWith(t, "laptop", "--name", "alice", "--device", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	bob := newDevice(t, "bob")
	laptop.upInProcess()
	bob.upInProcess()
	laptop.ok("group", "create", "ops")
	join(t, laptop, bob, "ops")
	laptop.ok("send", "ops", "the zeppelin lands at noon")

	// device link prints the code, waits for the new device and prints
	// the comparison string, which init --link prints too.
	linkOut := &syncBuffer{}
	linked := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		linked <- laptop.runner.Run(ctx, []string{"--home", laptop.home, "device", "link"}, strings.NewReader(""), linkOut, io.Discard)
	}()
	var code string
	waitUntil(t, 10*time.Second, "a link code", func() bool {
		line, _, ok := strings.Cut(linkOut.String(), "\n")
		code = line
		return ok
	})
	phone, phoneInit, err := newDeviceWith(t, "phone", "--link", code, "--device", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if err := <-linked; err != nil {
		t.Fatalf("device link: %v", err)
	}
	_, after, _ := strings.Cut(linkOut.String(), "linked phone (comparison ")
	cmp, _, _ := strings.Cut(after, ")")
	if len(cmp) != 7 || !strings.Contains(phoneInit, "comparison "+cmp) {
		t.Fatalf("comparison strings differ: laptop %q, phone printed %q", linkOut.String(), phoneInit)
	}
	if !strings.Contains(phoneInit, "history: 1 message,") {
		t.Fatalf("init --link did not bring the history: %q", phoneInit)
	}
	if _, _, err := newDeviceWith(t, "tablet", "--link", code, "--device", "tablet"); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replayed link code: %v", err)
	}
	var lc api.LinkCode
	if err := json.Unmarshal([]byte(laptop.ok("device", "link", "--no-wait", "--json")), &lc); err != nil || !strings.HasPrefix(lc.Code, "grove-link1-") {
		t.Fatalf("device link --json: %+v %v", lc, err)
	}
	phone.upInProcess()
	waitUntil(t, 60*time.Second, "bob sees alice's two devices", func() bool {
		out, _, err := bob.run("", "members", "ops")
		return err == nil && strings.Contains(out, "alice (laptop)") && strings.Contains(out, "alice (phone)")
	})
	waitUntil(t, 60*time.Second, "the phone in ops", func() bool {
		out, _, err := phone.run("", "members", "ops")
		return err == nil && strings.Contains(out, "alice (phone) (you)")
	})
	phone.ok("send", "ops", "sent from the phone")
	waitUntil(t, 20*time.Second, "bob reads the phone", func() bool {
		return strings.Contains(strings.Join(bob.logTexts("ops"), "\n"), "sent from the phone")
	})
	list := laptop.ok("device", "list")
	if !strings.Contains(list, "laptop (this device)") || !strings.Contains(list, "phone") {
		t.Fatalf("device list:\n%s", list)
	}

	dir := shortTempDir(t)
	pass, backup := filepath.Join(dir, "pass"), filepath.Join(dir, "alice.age")
	os.WriteFile(pass, []byte("correct horse\n"), 0o600)
	out := laptop.ok("backup", "create", backup, "--passphrase-file", pass, "--work-factor", "10")
	if !strings.Contains(out, "messages in 1 groups") {
		t.Fatalf("backup create: %q", out)
	}
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("battery staple\n"), 0o600)
	restored := &device{t: t, name: "restored", home: filepath.Join(shortTempDir(t), "restored"), runner: laptop.runner}
	if _, errOut, err := restored.run("", "backup", "restore", backup, "--passphrase-file", wrong, "--key-file"); err == nil || !strings.Contains(errOut, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v %q", err, errOut)
	}
	out = restored.ok("backup", "restore", backup, "--passphrase-file", pass, "--device", "restored", "--key-file")
	if !strings.HasPrefix(out, "restored alice in ") {
		t.Fatalf("backup restore: %q", out)
	}
	restored.upInProcess()
	// Alice's account is the admin of ops: the restored device gets back
	// in by itself.
	waitUntil(t, 60*time.Second, "restored device back in ops", func() bool {
		out, _, err := restored.run("", "members", "ops")
		return err == nil && strings.Contains(out, "alice (restored) (you)")
	})
	var sr api.SearchResult
	if err := json.Unmarshal([]byte(restored.ok("search", "zeppelin", "--json")), &sr); err != nil {
		t.Fatal(err)
	}
	if len(sr.Hits) != 1 || sr.Hits[0].Message.Text != "the zeppelin lands at noon" {
		t.Fatalf("search after restore: %+v", sr.Hits)
	}

	out = laptop.ok("device", "revoke", "phone")
	if !strings.HasPrefix(out, "revoked phone") {
		t.Fatalf("device revoke: %q", out)
	}
	waitUntil(t, 60*time.Second, "phone removed", func() bool {
		out, _, err := bob.run("", "members", "ops")
		return err == nil && !strings.Contains(out, "phone")
	})
}
