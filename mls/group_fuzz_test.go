package mls

import (
	"bytes"
	"testing"
)

// fuzzGroupFixture builds a three-member group and a few valid messages
// for bob to receive, shared by the fuzz targets' seed corpora.
func fuzzGroupFixture(t testing.TB) (bobState []byte, msgs [][]byte, states [][]byte) {
	tg := newTestGroup(t, testSuite, 99, "alice")
	tg.add("alice", "bob", "carol")
	alice := tg.members["alice"]
	app, _ := alice.ProtectApplication([]byte("hello"), []byte("ad"), tg.rand)
	prop, _, _ := alice.Propose(&Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: 2}}, false, tg.rand)
	privProp, _, _ := alice.ProposeUpdate(true, tg.rand)
	sc, err := alice.Commit(&CommitOptions{Rand: tg.rand, Now: testNow, SkipCached: true})
	if err != nil {
		t.Fatal(err)
	}
	scp, err := tg.members["carol"].Commit(&CommitOptions{Rand: tg.rand, Now: testNow, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	gi, _ := alice.GroupInfo(true)
	bobState = stateOf(t, tg.members["bob"])
	msgs = [][]byte{app, prop, privProp, sc.Message, scp.Message, sc.Welcome, gi}
	for _, g := range tg.members {
		states = append(states, stateOf(t, g))
	}
	next, _ := sc.Merge()
	states = append(states, stateOf(t, next))
	return bobState, msgs, states
}

func FuzzUnmarshalGroup(f *testing.F) {
	_, _, states := fuzzGroupFixture(f)
	for _, s := range states {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalGroup(data)
		if err != nil {
			return
		}
		enc, err := g.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("parse-then-encode differs")
		}
	})
}

func FuzzProcessMessage(f *testing.F) {
	bobState, msgs, _ := fuzzGroupFixture(f)
	for _, m := range msgs {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalGroup(bobState)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.ProcessMessage(data, ProcessOptions{Now: testNow}); err == nil {
			return
		}
		if after := stateOf(t, g); !bytes.Equal(after, bobState) {
			t.Fatalf("rejected message changed the state")
		}
	})
}

// FuzzJoinFromWelcome feeds arbitrary Welcomes and trees to a joiner: no
// panic, and only the genuine Welcome joins.
func FuzzJoinFromWelcome(f *testing.F) {
	rand := &seedRand{seed: 98}
	tg := newTestGroup(f, testSuite, 97, "alice")
	tg.add("alice", "bob")
	kp := newTestKeyPackage(f, testSuite, "joiner", rand)
	sc, err := tg.members["alice"].Commit(&CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}, OmitRatchetTree: true, Rand: rand, Now: testNow})
	if err != nil {
		f.Fatal(err)
	}
	next, _ := sc.Merge()
	tree, _ := next.tree.MarshalBinary()
	f.Add(sc.Welcome, tree)
	f.Add(sc.Welcome, []byte{})
	f.Fuzz(func(t *testing.T, welcome, tree []byte) {
		g, err := JoinFromWelcome(&JoinParams{Welcome: welcome, KeyPackage: kp, RatchetTree: tree, Now: testNow})
		if err == nil && !bytes.Equal(g.EpochAuthenticator(), next.EpochAuthenticator()) {
			t.Fatal("joined a different epoch")
		}
	})
}

// FuzzJoinExternal feeds arbitrary GroupInfos to an external joiner.
func FuzzJoinExternal(f *testing.F) {
	rand := &seedRand{seed: 96}
	tg := newTestGroup(f, testSuite, 95, "alice")
	tg.add("alice", "bob")
	gi, err := tg.members["alice"].GroupInfo(true)
	if err != nil {
		f.Fatal(err)
	}
	s, _ := testSuite.Suite()
	sig, _ := s.GenerateSigningKey(rand)
	f.Add(gi)
	f.Fuzz(func(t *testing.T, gi []byte) {
		JoinExternal(&ExternalJoinParams{GroupInfo: gi, Credential: NewBasicCredential([]byte("x")), SigningKey: sig, Now: testNow, Rand: &seedRand{seed: 1}})
	})
}
