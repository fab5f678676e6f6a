package cli

import (
	"strings"
	"testing"
	"time"
)

// TestAccountRotateCLI, a real daemon: account rotate prints the old and
// the new key, status shows the new one, and the group still works.
func TestAccountRotateCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice := newDevice(t, "alice")
	alice.upInProcess()
	alice.ok("group", "create", "ops")
	before := statusAccount(t, alice)
	out := alice.ok("account", "rotate")
	if !strings.HasPrefix(out, "account key rotated: "+before+" is now ") || !strings.Contains(out, "(1 devices kept)") {
		t.Fatalf("account rotate printed %q (account was %q)", out, before)
	}
	after := statusAccount(t, alice)
	if after == before || !strings.Contains(out, "is now "+after) {
		t.Fatalf("status shows account %q after the rotation to %q", after, out)
	}
	alice.ok("send", "ops", "still here")
}

func statusAccount(t *testing.T, d *device) string {
	t.Helper()
	for _, line := range strings.Split(d.ok("status"), "\n") {
		if rest, ok := strings.CutPrefix(line, "account"); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatal("status shows no account")
	return ""
}

// TestGroupSettingsCLI, real daemons: the history for new members is off
// by default; bob, no admin, cannot set it; alice sets 30d, which bob
// then reads too; carol, invited after, reads the earlier message.
func TestGroupSettingsCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob, carol := newDevice(t, "alice"), newDevice(t, "bob"), newDevice(t, "carol")
	for _, d := range []*device{alice, bob, carol} {
		d.upInProcess()
	}
	alice.ok("group", "create", "ops")
	join(t, alice, bob, "ops")
	alice.ok("send", "ops", "the plan before carol")
	if out := alice.ok("group", "settings", "ops"); out != "history for new members: off\n" {
		t.Fatalf("settings by default: %q", out)
	}
	if errOut := bob.fail("", "group", "settings", "ops", "--history-for-new-members", "30d"); !strings.Contains(errOut, "only admins may change the group's history for new members") {
		t.Fatalf("bob's refusal: %q", errOut)
	}
	if errOut := alice.fail("", "group", "settings", "ops", "--history-for-new-members", "30 days"); !strings.Contains(errOut, "want a number of days like 30d") {
		t.Fatalf("bad duration: %q", errOut)
	}
	if out := alice.ok("group", "settings", "ops", "--history-for-new-members", "30d"); !strings.Contains(out, "new members of ops get 30d of history") {
		t.Fatalf("set: %q", out)
	}
	waitUntil(t, 20*time.Second, "bob reads the setting", func() bool {
		return bob.ok("group", "settings", "ops") == "history for new members: 30d\n"
	})
	join(t, alice, carol, "ops")
	waitUntil(t, 20*time.Second, "carol reads the earlier message", func() bool {
		return strings.Contains(carol.ok("log", "ops"), "the plan before carol")
	})
}
