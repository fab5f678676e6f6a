package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"grove/node/api"
)

// adminOf reports whether d's members list of group marks member an admin.
func adminOf(d *device, group, member string) bool {
	d.t.Helper()
	var ms []api.Member
	if err := json.Unmarshal([]byte(d.ok("members", group, "--json")), &ms); err != nil {
		d.t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == member {
			return m.Admin
		}
	}
	d.t.Fatalf("%s: no member %s in %s", d.name, member, group)
	return false
}

// groupByID returns d's group with id, or the zero Group.
func groupByID(d *device, id string) api.Group {
	d.t.Helper()
	var gs []api.Group
	if err := json.Unmarshal([]byte(d.ok("group", "list", "--json")), &gs); err != nil {
		d.t.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == id {
			return g
		}
	}
	return api.Group{}
}

// TestPromoteDemoteRename checks on real daemons that admins promote and
// demote members and rename the group, that both members' devices agree on
// the result (it is group state, committed), that non-admins are refused,
// that the last admin cannot be demoted, and that a new name taken on a
// device already is shown there with a suffix.
func TestPromoteDemoteRename(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := opsPair(t, true)
	var g api.Group
	if err := json.Unmarshal([]byte(alice.ok("group", "create", "dev", "--json")), &g); err != nil {
		t.Fatal(err)
	}
	var gs []api.Group
	if err := json.Unmarshal([]byte(alice.ok("group", "list", "--json")), &gs); err != nil {
		t.Fatal(err)
	}
	var ops api.Group
	for _, gg := range gs {
		if gg.Name == "ops" {
			ops = gg
		}
	}

	if got := bob.fail("", "group", "promote", "ops", "bob"); got != "grove: only admins may promote or demote members\n" {
		t.Errorf("bob promotes himself: %q", got)
	}
	if got := bob.fail("", "group", "rename", "ops", "mine"); got != "grove: only admins may rename the group\n" {
		t.Errorf("bob renames: %q", got)
	}
	if got := alice.fail("", "group", "demote", "ops", "alice"); got != "grove: you are the only admin of \"ops\": promote another member first\n" {
		t.Errorf("alice demotes herself: %q", got)
	}
	if got := alice.fail("", "group", "demote", "ops", "bob"); got != "grove: bob is not an admin of \"ops\"\n" {
		t.Errorf("demote a member: %q", got)
	}
	if got := alice.fail("", "group", "promote", "ops", "alice"); got != "grove: alice is already an admin of \"ops\"\n" {
		t.Errorf("promote an admin: %q", got)
	}
	if got := alice.fail("", "group", "promote", "ops", "carol"); got != "grove: no member \"carol\"\n" {
		t.Errorf("promote a stranger: %q", got)
	}
	if got := alice.fail("", "group", "rename", "ops", "dev"); !strings.HasPrefix(got, "grove: you already have a group named \"dev\" (id ") {
		t.Errorf("rename to a name taken here: %q", got)
	}
	if got := alice.fail("", "group", "rename", "ops", "bad\x1bname"); got != "grove: group name \"bad\\x1bname\" is not allowed: contains the invisible or control character U+001B\n" {
		t.Errorf("rename to a bad name: %q", got)
	}

	out := alice.ok("group", "promote", "ops", "bob")
	if !strings.HasPrefix(out, "bob is now an admin of ops (epoch ") {
		t.Fatalf("promote: %q", out)
	}
	waitUntil(t, 20*time.Second, "bob's device to see him an admin", func() bool { return adminOf(bob, "ops", "bob") })
	if !adminOf(alice, "ops", "bob") || !groupByID(bob, ops.ID).Admin {
		t.Errorf("after promote: alice sees bob admin %v, bob's group list: %+v", adminOf(alice, "ops", "bob"), groupByID(bob, ops.ID))
	}

	// The new admin renames the group; both devices take the name. Bob
	// has no other group, alice has "dev" already: hers becomes "dev (2)".
	var ch api.Change
	if err := json.Unmarshal([]byte(bob.ok("group", "rename", "ops", "dev", "--json")), &ch); err != nil {
		t.Fatal(err)
	}
	if ch.Kind != api.ChangeRename || ch.State != api.ChangeDone || ch.Name != "dev" {
		t.Errorf("rename --json: %+v", ch)
	}
	if got := groupByID(bob, ops.ID).Name; got != "dev" {
		t.Errorf("bob's name for the renamed group: %q", got)
	}
	waitUntil(t, 20*time.Second, "alice's device to take the new name", func() bool { return groupByID(alice, ops.ID).Name == "dev (2)" })
	if groupByID(alice, g.ID).Name != "dev" {
		t.Errorf("alice's own dev group was renamed: %+v", groupByID(alice, g.ID))
	}
	// The local name is kept over a restart.
	alice.stop()
	alice.upInProcess()
	if got := groupByID(alice, ops.ID).Name; got != "dev (2)" {
		t.Errorf("after a restart alice calls the renamed group %q", got)
	}
	alice.ok("send", "dev (2)", "still here")
	waitUntil(t, 20*time.Second, "the message to reach bob", func() bool {
		return strings.Contains(bob.ok("log", "dev"), "still here")
	})

	// Bob takes the role from alice; she can no longer manage the group,
	// and he, now the only admin, cannot demote himself.
	if out := bob.ok("group", "demote", "dev", "alice"); !strings.HasPrefix(out, "alice is no longer an admin of dev (epoch ") {
		t.Fatalf("demote: %q", out)
	}
	waitUntil(t, 20*time.Second, "alice's device to see her demoted", func() bool { return !groupByID(alice, ops.ID).Admin })
	if got := alice.fail("", "group", "promote", "dev (2)", "alice"); got != "grove: only admins may promote or demote members\n" {
		t.Errorf("demoted alice promotes herself: %q", got)
	}
	if got := alice.fail("", "remove", "dev (2)", "bob"); got != "grove: only admins may remove members\n" {
		t.Errorf("demoted alice removes bob: %q", got)
	}
	if got := bob.fail("", "group", "demote", "dev", "bob"); got != "grove: you are the only admin of \"dev\": promote another member first\n" {
		t.Errorf("bob demotes himself: %q", got)
	}
}

// TestMuteGroup checks that mute and unmute are a setting of the device
// that group list shows and that survives a restart.
func TestMuteGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemon; skipped with -short")
	}
	alice := newDevice(t, "alice")
	alice.upInProcess()
	var g api.Group
	if err := json.Unmarshal([]byte(alice.ok("group", "create", "ops", "--json")), &g); err != nil {
		t.Fatal(err)
	}
	if got := alice.ok("group", "mute", "ops"); got != "muted ops: no notifications from it on this device\n" {
		t.Errorf("mute: %q", got)
	}
	if !groupByID(alice, g.ID).Muted || !strings.Contains(alice.ok("group", "list"), " 0 (muted) ") {
		t.Errorf("group list after mute:\n%s", alice.ok("group", "list"))
	}
	alice.stop()
	alice.upInProcess()
	if !groupByID(alice, g.ID).Muted {
		t.Errorf("mute lost over a restart")
	}
	var ch api.Change
	if err := json.Unmarshal([]byte(alice.ok("group", "unmute", "ops", "--json")), &ch); err != nil || ch.Kind != api.ChangeUnmute || ch.State != api.ChangeDone {
		t.Errorf("unmute --json: %+v %v", ch, err)
	}
	if groupByID(alice, g.ID).Muted {
		t.Errorf("still muted after unmute")
	}
	if got := alice.fail("", "group", "mute", "nope"); got != "grove: no group \"nope\"\n" {
		t.Errorf("mute an unknown group: %q", got)
	}
}

// TestInviteUses checks invite --uses: a code for two devices lets two
// devices join, is listed with its uses, and refuses a third device.
func TestInviteUses(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := opsPair(t, false)
	carol, dave := newDevice(t, "carol"), newDevice(t, "dave")
	carol.upInProcess()
	dave.upInProcess()
	var inv api.Invite
	if err := json.Unmarshal([]byte(alice.ok("invite", "ops", "--uses", "2", "--json")), &inv); err != nil || inv.Uses != 2 {
		t.Fatalf("invite --uses 2: %+v %v", inv, err)
	}
	if table := alice.ok("invite", "list"); !strings.Contains(table, "0 of 2 uses redeemed") {
		t.Errorf("invite list before any join:\n%s", table)
	}
	if out := bob.ok("join", inv.Code, "--timeout", "45s"); !strings.HasPrefix(out, "joined ops ") {
		t.Fatalf("bob join: %q", out)
	}
	if table := alice.ok("invite", "list"); !strings.Contains(table, "1 of 2 uses redeemed") {
		t.Errorf("invite list after one join:\n%s", table)
	}
	if out := carol.ok("join", inv.Code, "--timeout", "45s"); !strings.HasPrefix(out, "joined ops ") {
		t.Fatalf("carol join: %q", out)
	}
	if got := dave.fail("", "join", inv.Code, "--timeout", "20s"); !strings.HasSuffix(got, "grove: invite refused: invite code already used\n") {
		t.Errorf("third device: %q", got)
	}
	waitUntil(t, 10*time.Second, "the spent code to leave the list", func() bool {
		return alice.ok("invite", "list") == "no open invites\n"
	})
	for _, args := range [][]string{{"--uses", "0"}, {"--uses", "1001"}} {
		if got := alice.fail("", append([]string{"invite", "ops"}, args...)...); got != "grove: invite: --uses must be between 1 and 1000\n" {
			t.Errorf("invite %v: %q", args, got)
		}
	}
}

// TestNewcomerSeesHistoryNotice checks that a member who joined through an
// invite is told, where its log begins, that earlier messages are not
// available, and that the group's creator is not.
func TestNewcomerSeesHistoryNotice(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := opsPair(t, false)
	alice.ok("send", "ops", "said before bob came")
	// The code as copied from grove chat's invite pane, where it wraps:
	// join - ignores the line breaks.
	code := strings.TrimSpace(alice.ok("invite", "ops"))
	var wrapped strings.Builder
	for len(code) > 0 {
		n := min(len(code), 40)
		wrapped.WriteString(code[:n] + "\n")
		code = code[n:]
	}
	if out, errOut, err := bob.run(wrapped.String(), "join", "-", "--timeout", "45s"); err != nil || !strings.HasPrefix(out, "joined ops ") {
		t.Fatalf("join - with a wrapped code: %v %q %q", err, out, errOut)
	}
	alice.ok("send", "ops", "welcome bob")
	waitUntil(t, 20*time.Second, "the welcome to reach bob", func() bool {
		return strings.Contains(bob.ok("log", "ops"), "welcome bob")
	})
	out := bob.ok("log", "ops")
	first, rest, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(first, "-- you joined ops on ") || !strings.HasSuffix(first, ": messages from before are not available on this device --") {
		t.Errorf("bob's log does not start with the notice:\n%s", out)
	}
	if strings.Contains(rest, "said before bob came") || !strings.Contains(rest, "welcome bob") {
		t.Errorf("bob's log:\n%s", out)
	}
	if strings.Contains(alice.ok("log", "ops"), "you joined") {
		t.Errorf("the creator's log has the notice:\n%s", alice.ok("log", "ops"))
	}
	// Only where the log begins: a page that starts later has no notice.
	if got := bob.ok("log", "ops", "--limit", "1"); strings.Contains(got, "you joined") {
		t.Errorf("log --limit 1 (more history than shown):\n%s", got)
	}
	var gs []api.Group
	if err := json.Unmarshal([]byte(bob.ok("group", "list", "--json")), &gs); err != nil || len(gs) != 1 || gs[0].JoinedAt.IsZero() {
		t.Errorf("bob's group list --json: %+v %v", gs, err)
	}
}
