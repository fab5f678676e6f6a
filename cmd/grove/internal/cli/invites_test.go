package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"grove/node/api"
)

// TestInviteExpiresListRevoke checks invite --expires, invite list and
// invite revoke against real daemons: a revoked code cannot be redeemed, a
// code whose Welcome was handed over leaves the list.
func TestInviteExpiresListRevoke(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := opsPair(t, false)

	before := time.Now()
	var kept, revoked api.Invite
	if err := json.Unmarshal([]byte(alice.ok("invite", "ops", "--expires", "2h", "--json")), &kept); err != nil {
		t.Fatal(err)
	}
	if d := kept.Expires.Sub(before); d < 2*time.Hour-2*time.Second || d > 2*time.Hour+2*time.Second {
		t.Errorf("--expires 2h: the code expires in %v", d)
	}
	revoked.Code = strings.TrimSpace(alice.ok("invite", "ops"))

	var invs []api.InviteInfo
	if err := json.Unmarshal([]byte(alice.ok("invite", "list", "--json")), &invs); err != nil || len(invs) != 2 {
		t.Fatalf("invite list: %+v %v", invs, err)
	}
	if table := alice.ok("invite", "list"); !strings.HasPrefix(table, "ID        GROUP  EXPIRES") || !strings.Contains(table, invs[1].ID+"  ops    ") {
		t.Errorf("invite list table:\n%s", table)
	}
	if got := alice.ok("invite", "revoke", invs[1].ID, "--json"); got != `{"id":"`+invs[1].ID+`","revoked":true}`+"\n" {
		t.Errorf("revoke: %q", got)
	}
	if got := alice.fail("", "invite", "revoke", invs[1].ID); got != "grove: no invite \""+invs[1].ID+"\" (grove invite list shows the ids)\n" {
		t.Errorf("second revoke: %q", got)
	}
	if out, errOut, err := bob.run("", "join", revoked.Code, "--timeout", "15s"); err == nil {
		t.Fatalf("join with a revoked code succeeded: %q", out)
	} else {
		t.Logf("join with the revoked code: %s", strings.TrimSpace(errOut))
	}
	keptID := invs[0].ID
	join(t, alice, bob, "ops") // a new code works
	waitUntil(t, 10*time.Second, "the redeemed code to leave the list", func() bool {
		var invs []api.InviteInfo
		json.Unmarshal([]byte(alice.ok("invite", "list", "--json")), &invs)
		return len(invs) == 1 && invs[0].ID == keptID
	})
	if got := alice.fail("", "invite", "ops", "--expires", "721h"); got != "grove: invite: --expires must be between 1s and 720h0m0s\n" {
		t.Errorf("--expires 721h: %q", got)
	}
}
