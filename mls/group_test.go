package mls

import (
	"bytes"
	"errors"
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

func TestPSKProposals(t *testing.T) {
	store := MapPSKStore{"shared": []byte("external secret value")}
	tg := newTestGroup(t, testSuite, 4, "alice")
	tg.cfg.PSKs = store
	tg.members["alice"].SetPSKStore(store)
	tg.add("alice", "bob")
	for _, g := range tg.members {
		g.SetPSKStore(store)
	}
	s, _ := testSuite.Suite()
	nonce := func() []byte {
		n := make([]byte, s.HashSize())
		tg.rand.Read(n)
		return n
	}
	ext := &Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: []byte("shared"), PSKNonce: nonce()}}}
	tg.commit("alice", &CommitOptions{Proposals: []*Proposal{ext}}, nil)
	// Resumption PSK of the previous epoch.
	g := tg.members["bob"]
	res := &Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{
		PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageApplication, PSKGroupID: g.GroupID(), PSKEpoch: g.Epoch() - 1, PSKNonce: nonce()}}}
	tg.commit("bob", &CommitOptions{Proposals: []*Proposal{res}}, nil)
	// A PSK the members do not hold cannot be committed or processed.
	unknown := &Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: []byte("nope"), PSKNonce: nonce()}}}
	if _, err := tg.members["alice"].Commit(&CommitOptions{Proposals: []*Proposal{unknown}, Rand: tg.rand, Now: testNow}); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("unknown PSK: %v", err)
	}
	// Joining with a PSK in the Welcome.
	kp := newTestKeyPackage(t, testSuite, "carol", tg.rand)
	sc, err := tg.members["alice"].Commit(&CommitOptions{Proposals: []*Proposal{
		{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}},
		{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: []byte("shared"), PSKNonce: nonce()}}},
	}, Rand: tg.rand, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinFromWelcome(&JoinParams{Welcome: sc.Welcome, KeyPackage: kp, Now: testNow}); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("join without the PSK: %v", err)
	}
	j, err := JoinFromWelcome(&JoinParams{Welcome: sc.Welcome, KeyPackage: kp, Now: testNow, PSKs: store})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := sc.Merge()
	if !bytes.Equal(a.EpochAuthenticator(), j.EpochAuthenticator()) {
		t.Fatal("joiner disagrees")
	}
}

func TestReInit(t *testing.T) {
	tg := newTestGroup(t, testSuite, 5, "alice")
	tg.add("alice", "bob", "carol")
	tg.commit("bob", &CommitOptions{Proposals: []*Proposal{ReInitProposal([]byte("group v2"), testSuite, nil)}}, nil)
	for name, g := range tg.members {
		if g.ReInitProposal() == nil {
			t.Fatalf("%s: no reinit", name)
		}
		if _, err := g.ProtectApplication([]byte("x"), nil, tg.rand); err == nil {
			t.Fatalf("%s: application message after ReInit", name)
		}
	}
	kps := map[string]*KeyPackageBundle{}
	var others []*KeyPackage
	for _, n := range []string{"bob", "carol"} {
		kps[n] = newTestKeyPackage(t, testSuite, n, tg.rand)
		others = append(others, &kps[n].KeyPackage)
	}
	own := newTestKeyPackage(t, testSuite, "alice", tg.rand)
	ng, welcome, err := tg.members["alice"].ReInitGroup(&SuccessorParams{Own: own, KeyPackages: others, Now: testNow, Rand: tg.rand})
	if err != nil {
		t.Fatal(err)
	}
	if string(ng.GroupID()) != "group v2" || ng.Epoch() != 1 {
		t.Fatalf("successor %q epoch %d", ng.GroupID(), ng.Epoch())
	}
	for _, n := range []string{"bob", "carol"} {
		if _, err := JoinFromWelcome(&JoinParams{Welcome: welcome, KeyPackage: kps[n], Now: testNow}); !errors.Is(err, ErrUnknownPSK) {
			t.Fatalf("%s joins without the old group: %v", n, err)
		}
		j, err := JoinFromWelcome(&JoinParams{Welcome: welcome, KeyPackage: kps[n], Now: testNow, Resumption: tg.members[n]})
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if !bytes.Equal(j.EpochAuthenticator(), ng.EpochAuthenticator()) {
			t.Fatalf("%s disagrees", n)
		}
	}
}

// TestApplicationPadding checks that PrivateMessage contents are padded to
// the configured block, so that lengths leak only in block steps.
func TestApplicationPadding(t *testing.T) {
	tg := newTestGroup(t, testSuite, 30, "alice")
	tg.add("alice", "bob")
	a := tg.members["alice"]
	size := func(data string) int {
		msg, err := a.ProtectApplication([]byte(data), nil, tg.rand)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := UnmarshalMLSMessage(msg)
		return len(m.PrivateMessage.Ciphertext)
	}
	if size("a") != size("abcdefghijklmnop") {
		t.Fatal("short messages not padded to one block")
	}
	if size("a") == size(string(make([]byte, 200))) {
		t.Fatal("padding hides a 200-byte difference")
	}
	a.cfg.PaddingBlock = -1
	if size("a") == size("abcdefghijklmnop") {
		t.Fatal("padding disabled but sizes equal")
	}
	tg.sendApp("alice", "unpadded still decrypts")
}
