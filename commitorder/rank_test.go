package commitorder

import (
	"testing"
	"time"
)

// TestParentMissingByRank: an encrypted Commit's framing names its
// committer's rank, not its identity (node's commit authenticated data);
// a sibling of a commit we hold final is judged by that rank exactly as
// by the identity: a removal beats our update (our branch lost), an
// update that ranks worse does not (ours won).
func TestParentMissingByRank(t *testing.T) {
	ms := ids("a", "b", "c")
	cfg := Config{Depth: 2, MaxAge: time.Minute, Grace: time.Second}
	gen := Genesis{Eid: EpochID{0x51}, Epoch: 1, Members: ms}
	chain := chainFrom(gen.Eid, gen.Epoch, ids("a"), ms, 6, 1)
	fork := chain[0] // our final commit on gen
	// An update sibling that ranks worse than ours.
	tupleOf := func(c CommitSeen) tuple {
		return tuple{class: c.Class, rank: RankOf(c.Parent, c.Committer), cid: c.Cid}
	}
	var worse CommitSeen
	for salt := uint64(900); ; salt++ {
		worse = mkCommit(gen.Eid, 2, ids("a", "b")[salt%2], ClassUpdate, ms, salt)
		if tupleOf(fork).less(tupleOf(worse)) {
			break
		}
	}
	// And one that the rank of an empty identity would judge otherwise
	// (what a node that dropped the rank would get).
	var telling CommitSeen
	for salt := uint64(2000); ; salt++ {
		telling = mkCommit(gen.Eid, 2, ids("a", "b")[salt%2], ClassUpdate, ms, salt)
		blind := tupleOf(telling)
		blind.rank = RankOf(gen.Eid, "")
		if tupleOf(telling).less(tupleOf(fork)) != blind.less(tupleOf(fork)) {
			break
		}
	}
	cases := []struct {
		name     string
		sib      CommitSeen
		wantLost bool
	}{
		{"removal beats our update", mkCommit(gen.Eid, 2, "b", ClassRemove, ms, 901), true},
		{"worse update", worse, false},
		{"update judged by its rank", telling, tupleOf(telling).less(tupleOf(fork))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var lost [2]bool
			var won [2]bool
			for i := range 2 {
				g, err := New(cfg, "c", gen, t0)
				if err != nil {
					t.Fatal(err)
				}
				now := time.Duration(0)
				for _, cs := range chain {
					step(t, g, cs)
					for _, m := range ids("a", "b") {
						step(t, g, TipSeen{Member: m, Eid: cs.Eid, Epoch: cs.Epoch})
					}
					now += 2 * time.Second
					step(t, g, Tick{Now: at(now)})
				}
				if !g.inHistory(gen.Eid) && g.nodes[gen.Eid] != nil {
					t.Fatalf("the fork point is not final yet (root epoch %d)", g.root.epoch)
				}
				ev := ParentMissing{Parent: c.sib.Parent, ParentEpoch: 1, Cid: c.sib.Cid, Class: c.sib.Class}
				if i == 0 {
					ev.Committer = c.sib.Committer
				} else {
					ev.Rank = RankOf(c.sib.Parent, c.sib.Committer)
				}
				step(t, g, ev)
				lost[i], won[i] = g.lost, g.wonAt != 0
			}
			if lost[0] != c.wantLost {
				t.Fatalf("by identity: lost %v, want %v", lost[0], c.wantLost)
			}
			if lost != [2]bool{lost[0], lost[0]} || won[0] != won[1] {
				t.Fatalf("by rank judged otherwise than by identity: lost %v, won %v", lost, won)
			}
		})
	}
}
