package cli

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"grove/node/api"
)

// TestNoHomeSaysInit checks that commands on a home that does not exist
// point to init, not to up (which would fail next for the same reason).
func TestNoHomeSaysInit(t *testing.T) {
	h := newHarness(t)
	want := "grove: no grove home at " + h.home + " (create one with: grove init --home " + h.home + " --name NAME)\n"
	for _, args := range [][]string{{"status"}, {"group", "list"}, {"send", "g", "t"}, {"up"}} {
		h.fails(want, 1, args...)
	}
}

// TestJoinCodeFromStdin checks `join -`, which keeps the code out of the
// shell history.
func TestJoinCodeFromStdin(t *testing.T) {
	h := newHarness(t)
	h.up()
	h.fake.AddJoinable("grove-abc", "ops")
	out, errOut, err := h.run("  grove-abc\n", "join", "-")
	if err != nil || !strings.HasPrefix(out, "joined ops ") {
		t.Fatalf("join -: %v %q %q", err, out, errOut)
	}
	if _, errOut, err := h.run("\n", "join", "-"); err == nil || errOut != "grove: join: no invite code on standard input\n" {
		t.Errorf("join - with empty input: %v %q", err, errOut)
	}
}

// TestChangingCommandsPrintJSON checks that every command that changes
// something prints one JSON result object with --json.
func TestChangingCommandsPrintJSON(t *testing.T) {
	h := newHarness(t)
	h.up()
	decode := func(out string, v any) {
		t.Helper()
		if strings.Count(out, "\n") != 1 {
			t.Fatalf("want one line of JSON, got %q", out)
		}
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("%q: %v", out, err)
		}
	}
	var g api.Group
	decode(h.ok("group", "create", "ops", "--json"), &g)
	if g.Name != "ops" || g.ID == "" || !g.Admin {
		t.Errorf("group create --json: %+v", g)
	}
	var inv api.Invite
	decode(h.ok("invite", "ops", "--json"), &inv)
	if inv.Code == "" || inv.Group != g.ID || inv.Expires.IsZero() {
		t.Errorf("invite --json: %+v", inv)
	}
	h.fake.AddJoinable("grove-x", "dev")
	var jg api.Group
	decode(h.ok("join", "grove-x", "--json"), &jg)
	if jg.Name != "dev" {
		t.Errorf("join --json: %+v", jg)
	}
	var m api.Message
	decode(h.ok("send", "ops", "hi", "--json"), &m)
	if m.Text != "hi" || !m.Own {
		t.Errorf("send --json: %+v", m)
	}
	if err := h.fake.AddMember("ops", "bob", false); err != nil {
		t.Fatal(err)
	}
	var ch api.Change
	decode(h.ok("remove", "ops", "bob", "--json"), &ch)
	if ch.Kind != api.ChangeRemove || ch.State != api.ChangeDone || ch.Epoch == 0 {
		t.Errorf("remove --json: %+v", ch)
	}
	decode(h.ok("rotate", "ops", "--json"), &ch)
	if ch.Kind != api.ChangeRotate || ch.State != api.ChangeDone {
		t.Errorf("rotate --json: %+v", ch)
	}
	var left leaveResult
	decode(h.ok("leave", "dev", "--json"), &left)
	if left != (leaveResult{Group: "dev", Left: true}) {
		t.Errorf("leave --json: %+v", left)
	}
}

// TestGroupNames checks on a real daemon that group names are unique on a
// device and cannot carry control or invisible characters.
func TestGroupNames(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemon; skipped with -short")
	}
	alice := newDevice(t, "alice")
	alice.upInProcess()
	alice.ok("group", "create", "dup")
	got := alice.fail("", "group", "create", "dup")
	if !strings.HasPrefix(got, "grove: you already have a group named \"dup\" (id ") || !strings.HasSuffix(got, "): choose another name\n") {
		t.Errorf("second create dup: %q", got)
	}
	for name, want := range map[string]string{
		"bad\x1bname":  "grove: group name \"bad\\x1bname\" is not allowed: contains the invisible or control character U+001B\n",
		"zero\u200bwd": "grove: group name \"zero\\u200bwd\" is not allowed: contains the invisible or control character U+200B\n",
		" padded":      "grove: group name \" padded\" is not allowed: leading or trailing space\n",
	} {
		if got := alice.fail("", "group", "create", "--", name); got != want {
			t.Errorf("create %q: stderr %q, want %q", name, got, want)
		}
	}
	var gs []api.Group
	if err := json.Unmarshal([]byte(alice.ok("group", "list", "--json")), &gs); err != nil || len(gs) != 1 {
		t.Errorf("groups after the refused creates: %+v %v", gs, err)
	}
}

func TestVersion(t *testing.T) {
	h := newHarness(t)
	// The test binary's own build info: no VCS stamp, the running Go.
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if got := h.ok(args...); !strings.HasPrefix(got, "grove ") || !strings.HasSuffix(got, " "+runtime.Version()+"\n") {
			t.Errorf("grove %v: %q", args, got)
		}
	}
	h.runner.testingOnlyBuildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "grove", Version: "v0.3.1"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0a05ede4c0ffee1234567890abcdef1234567890"},
			{Key: "vcs.time", Value: "2026-12-06T15:32:08Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, true
	}
	if got, want := h.ok("--version"), "grove v0.3.1 commit 0a05ede4c0ff+modified 2026-12-06T15:32:08Z go1.26.8\n"; got != want {
		t.Errorf("--version: %q, want %q", got, want)
	}
	var v VersionInfo
	if err := json.Unmarshal([]byte(h.ok("version", "--json")), &v); err != nil || v.Commit != "0a05ede4c0ffee1234567890abcdef1234567890" || !v.Modified || v.Module != "v0.3.1" {
		t.Errorf("version --json: %+v %v", v, err)
	}
}

// TestConnectAndPeers checks grove connect against real daemons and that
// peers then says who dialled whom over what.
func TestConnectAndPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("real daemons; skipped with -short")
	}
	alice, bob := newDevice(t, "alice"), newDevice(t, "bob")
	alice.upInProcess()
	bob.upInProcess()
	st := alice.status()
	if len(st.Addrs) == 0 {
		t.Fatal("alice has no address")
	}
	got := bob.ok("connect", st.Addrs[0])
	if want := "connected to " + st.PeerID + " (tcp, outbound)\n"; got != want {
		t.Errorf("connect: %q, want %q", got, want)
	}
	peerOf := func(d *device, id string) api.Peer {
		t.Helper()
		var ps []api.Peer
		if err := json.Unmarshal([]byte(d.ok("peers", "--json")), &ps); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.ID == id {
				return p
			}
		}
		t.Fatalf("%s: peer %s not listed in %+v", d.name, id, ps)
		return api.Peer{}
	}
	if p := peerOf(bob, st.PeerID); len(p.Conns) == 0 || p.Conns[0].Direction != "outbound" || p.Conns[0].Transport != "tcp" || !strings.HasPrefix(st.Addrs[0], p.Conns[0].Addr+"/p2p/") {
		t.Errorf("bob's view of alice: %+v", p)
	}
	var p api.Peer
	waitUntil(t, 10*time.Second, "alice to list bob", func() bool {
		var ps []api.Peer
		json.Unmarshal([]byte(alice.ok("peers", "--json")), &ps)
		for _, x := range ps {
			if x.ID == bob.status().PeerID {
				p = x
				return true
			}
		}
		return false
	})
	if len(p.Conns) == 0 || p.Conns[0].Direction != "inbound" || p.Conns[0].Transport != "tcp" {
		t.Errorf("alice's view of bob: %+v", p)
	}
	if table := alice.ok("peers"); !strings.Contains(table, "DIRECTION  TRANSPORT") || !strings.Contains(table, "inbound    tcp") {
		t.Errorf("peers table:\n%s", table)
	}

	noPeer := strings.TrimSuffix(st.Addrs[0], "/p2p/"+st.PeerID)
	if got, want := bob.fail("", "connect", noPeer), "grove: address "+noPeer+" does not end in /p2p/PEER_ID (grove status on the other device lists its full addresses)\n"; got != want {
		t.Errorf("connect without /p2p: %q, want %q", got, want)
	}
	if got, want := bob.fail("", "connect", "nonsense"), "grove: \"nonsense\" is not a multiaddr (want e.g. /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…)\n"; got != want {
		t.Errorf("connect nonsense: %q, want %q", got, want)
	}
	// A port nobody listens on (alice's, after she stops).
	alice.stop()
	// Bob notices the closed connection a moment later; until then a
	// connect finds him still connected and succeeds.
	waitUntil(t, 10*time.Second, "bob to drop alice", func() bool {
		var ps []api.Peer
		json.Unmarshal([]byte(bob.ok("peers", "--json")), &ps)
		for _, x := range ps {
			if x.ID == st.PeerID {
				return false
			}
		}
		return true
	})
	got = bob.fail("", "connect", st.Addrs[0])
	if want := "grove: could not connect to " + st.Addrs[0] + ": connection refused (is a grove daemon listening there?)\n"; got != want {
		t.Errorf("connect to a stopped daemon: %q, want %q", got, want)
	}
}

// opsPair starts alice's and bob's daemons in process, with a group "ops"
// that alice created and, if joined, bob joined.
func opsPair(t *testing.T, joined bool) (alice, bob *device) {
	t.Helper()
	alice, bob = newDevice(t, "alice"), newDevice(t, "bob")
	alice.upInProcess()
	bob.upInProcess()
	alice.ok("group", "create", "ops")
	if joined {
		join(t, alice, bob, "ops")
	}
	return alice, bob
}
