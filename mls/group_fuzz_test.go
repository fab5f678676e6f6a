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
