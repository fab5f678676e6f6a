package cli

import (
	"strings"
	"testing"
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
