package mls

import (
	"testing"
)

func TestGroupLifecycle(t *testing.T) {
	for _, cs := range []CipherSuite{testSuite, MLS_128_DHKEMP256_AES128GCM_SHA256_P256} {
		t.Run(cs.String(), func(t *testing.T) {
			tg := newTestGroup(t, cs, 1, "alice")
			tg.add("alice", "bob")
			tg.sendApp("alice", "hello bob")
			tg.sendApp("bob", "hi alice")
			tg.add("bob", "carol", "dave", "eve")
			tg.sendApp("carol", "hi all")
			tg.commit("dave", &CommitOptions{}, nil) // empty commit: path
			tg.sendApp("eve", "after empty commit")
			tg.remove("carol", "bob")
			tg.sendApp("alice", "bob is gone")
			tg.commit("eve", &CommitOptions{Private: true, ForcePath: true}, nil)
			tg.sendApp("dave", "after private commit")
			// Update by proposal, committed by someone else.
			msg, _, err := tg.members["dave"].ProposeUpdate(false, tg.rand)
			if err != nil {
				t.Fatal(err)
			}
			for name, g := range tg.members {
				if name == "dave" {
					continue
				}
				if _, err := g.ProcessMessage(msg, ProcessOptions{Now: testNow}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			tg.commit("alice", &CommitOptions{}, nil)
			tg.sendApp("dave", "after update")
			tg.add("alice", "frank")
			tg.remove("frank", "alice", "dave")
			tg.sendApp("eve", "end")
		})
	}
}

// TestGroupStateRoundTrip restores every member from its serialised state
// between operations: the group continues identically.
func TestGroupStateRoundTrip(t *testing.T) {
	tg := newTestGroup(t, testSuite, 2, "alice")
	tg.restoreAll()
	tg.add("alice", "bob", "carol")
	tg.restoreAll()
	tg.sendApp("bob", "one")
	tg.restoreAll()
	tg.sendApp("bob", "two")
	msg, _, err := tg.members["carol"].ProposeUpdate(true, tg.rand)
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range tg.members {
		if name != "carol" {
			if _, err := g.ProcessMessage(msg, ProcessOptions{Now: testNow}); err != nil {
				t.Fatal(err)
			}
		}
	}
	tg.restoreAll() // cached proposals and the pending update key survive
	tg.commit("bob", &CommitOptions{Private: true}, nil)
	tg.restoreAll() // past epochs survive
	tg.sendApp("carol", "three")
	tg.remove("alice", "bob")
	tg.restoreAll()
	tg.sendApp("carol", "four")
}

func TestExternalCommit(t *testing.T) {
	tg := newTestGroup(t, testSuite, 3, "alice")
	tg.add("alice", "bob", "carol")
	tg.externalJoin("bob", "dave", false)
	tg.sendApp("dave", "joined externally")
	tg.sendApp("alice", "welcome dave")
	// carol lost her state: she rejoins, removing her old leaf.
	old := tg.members["carol"].OwnLeaf()
	tg.externalJoin("alice", "carol", true)
	if m, err := tg.members["alice"].Member(old); err == nil && string(m.Identity) == "carol" && old != tg.members["carol"].OwnLeaf() {
		t.Fatalf("carol's old leaf %d still present", old)
	}
	if n := len(tg.members["alice"].Members()); n != 4 {
		t.Fatalf("%d members after resync, want 4", n)
	}
	tg.sendApp("carol", "back")
	tg.add("carol", "eve")
	tg.sendApp("eve", "hi")
}
