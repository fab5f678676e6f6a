package mls

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

// rapidDefaults lowers rapid's default number of checks for the
// property tests, whose cases run dozens of members through many
// commits; -rapid.checks on the command line still wins.
func rapidDefaults(t *testing.T, checks string) {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "rapid.checks" {
			set = true
		}
	})
	if set {
		return
	}
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return
	}
	old := f.Value.String()
	if err := flag.Set("rapid.checks", checks); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flag.Set("rapid.checks", old) })
}

// TestPropertyGroupAgreement runs random sequences of add, remove, update,
// commit and application messages over groups of up to 50 members. After
// every merged commit all members agree on the epoch authenticator and
// tree hash (checkAgreement); every application message is decrypted by
// exactly the members of its epoch: current members read it, removed
// members' last states do not.
func TestPropertyGroupAgreement(t *testing.T) {
	rapidDefaults(t, "8")
	const maxMembers = 50
	rapid.Check(t, func(rt *rapid.T) {
		seed := rapid.Uint64().Draw(rt, "seed")
		tg := newTestGroup(t, testSuite, seed, "m0")
		next := 1
		var removed []*Group
		names := func() []string {
			var out []string
			for n := range tg.members {
				out = append(out, n)
			}
			sort.Strings(out)
			return out
		}
		pick := func(label string) string {
			ns := names()
			return ns[rapid.IntRange(0, len(ns)-1).Draw(rt, label)]
		}
		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			op := rapid.IntRange(0, 4).Draw(rt, "op")
			switch {
			case op == 0 || len(tg.members) < 2: // add
				room := maxMembers - len(tg.members)
				if room == 0 {
					continue
				}
				k := rapid.IntRange(1, min(room, 16)).Draw(rt, "adds")
				var joiners []string
				for j := 0; j < k; j++ {
					joiners = append(joiners, fmt.Sprintf("m%d", next))
					next++
				}
				tg.add(pick("committer"), joiners...)
			case op == 1: // remove
				committer := pick("committer")
				var victims []string
				for _, n := range names() {
					if n != committer && rapid.IntRange(0, 3).Draw(rt, "remove "+n) == 0 {
						victims = append(victims, n)
					}
				}
				if len(victims) == 0 {
					continue
				}
				for _, v := range victims {
					removed = append(removed, tg.members[v])
				}
				tg.remove(committer, victims...)
			case op == 2: // update by proposal, committed by another member
				updater := pick("updater")
				msg, _, err := tg.members[updater].ProposeUpdate(rapid.Bool().Draw(rt, "private"), tg.rand)
				if err != nil {
					rt.Fatal(err)
				}
				for n, g := range tg.members {
					if n != updater {
						if _, err := g.ProcessMessage(msg, ProcessOptions{Now: testNow}); err != nil {
							rt.Fatalf("%s processes %s's update: %v", n, updater, err)
						}
					}
				}
				committer := pick("committer")
				for committer == updater {
					committer = pick("committer")
				}
				tg.commit(committer, &CommitOptions{}, nil)
			case op == 3: // commit with a path
				tg.commit(pick("committer"), &CommitOptions{ForcePath: true, Private: rapid.Bool().Draw(rt, "private")}, nil)
			default: // application message
				sender := pick("sender")
				msg := tg.sendApp(sender, fmt.Sprintf("message %d", i))
				for _, r := range removed {
					if _, err := r.ProcessMessage(msg, ProcessOptions{}); !errors.Is(err, ErrWrongEpoch) {
						rt.Fatalf("removed member's state on a current message: %v", err)
					}
				}
			}
		}
	})
}
