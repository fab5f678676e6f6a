package commitorder

import (
	"testing"
	"time"
)

// Scripted adversarial scenarios from the issue, one named test each.

var abcdef = ids("a", "b", "c", "d", "e", "f")

func members(n int) []MemberID { return abcdef[:n] }

// TestScenarioSpammerCappedRemoveLands: a non-admin committing an update on
// every epoch takes at most its share once anyone else commits (its
// commits over the limit lose to an honest sibling whatever the ranks), and
// the admin's removal of it lands.
func TestScenarioSpammerCappedRemoveLands(t *testing.T) {
	ms := members(4)
	gen := genesisOf(ms)
	gen.Admins = ids("a")
	cfg := Config{RateLimit: 3, RateWindow: 6}
	g, err := New(cfg, "b", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	p, ep := gen.Eid, uint64(1)
	honest := 0
	for i := range 12 {
		spam := mkCommit(p, ep+1, "d", ClassUpdate, ms, uint64(i))
		step(t, g, spam)
		if countOf(g.nodes[p].recent, "d") < cfg.RateLimit {
			headIs(t, g, spam.Eid)
			p, ep = spam.Eid, ep+1
			continue
		}
		// Over its share: an honest update on the same parent wins, even
		// where the spammer ranks better.
		other := mkCommit(p, ep+1, ms[honest%3], ClassUpdate, ms, uint64(i))
		step(t, g, other)
		headIs(t, g, other.Eid)
		honest++
		p, ep = other.Eid, ep+1
	}
	if honest < 4 {
		t.Fatalf("honest member got %d of 12 epochs past the spammer", honest)
	}
	if n := countOf(g.nodes[p].recent, "d"); n > cfg.RateLimit {
		t.Fatalf("spammer holds %d of the last %d commits, limit %d", n, cfg.RateWindow, cfg.RateLimit)
	}
	// The spammer races the admin's removal of it: the removal lands.
	spam := mkCommit(p, ep+1, "d", ClassUpdate, ms, 99)
	rm := mkCommit(p, ep+1, "a", ClassRemove, ids("a", "b", "c"), 1)
	step(t, g, spam)
	step(t, g, rm)
	headIs(t, g, rm.Eid)
}

// TestScenarioSpammerCannotDelayOthers: the proposer's side. A member
// committing at once on every epoch does not keep restarting an honest
// member's avoidance delay once it is over its share: the delay runs from
// the last epoch made by a commit that was not limited, so the honest
// member proposes on the spammer's latest epoch, where its commit beats the
// spammer's next.
func TestScenarioSpammerCannotDelayOthers(t *testing.T) {
	ms := members(4)
	cfg := Config{RateLimit: 3, RateWindow: 6, Delta: time.Second}
	for _, self := range ids("a", "b", "c") {
		g, err := New(cfg, self, genesisOf(ms), t0)
		if err != nil {
			t.Fatal(err)
		}
		step(t, g, TipSeen{Member: "d", Eid: genesisOf(ms).Eid, Epoch: 1})
		step(t, g, IntentQueued{ID: IntentID{1}, Class: ClassUpdate})
		p, ep := genesisOf(ms).Eid, uint64(1)
		now := t0
		proposed := false
		for i := range 40 {
			// A new epoch from the spammer every 100 ms, far below Delta.
			now = now.Add(100 * time.Millisecond)
			step(t, g, Tick{Now: now})
			spam := mkCommit(p, ep+1, "d", ClassUpdate, ms, uint64(i))
			eff := step(t, g, spam)
			if pr, ok := findEffect[ProposeCommit](eff); ok {
				if pr.Parent != spam.Eid {
					t.Fatalf("%s proposed on %v, head %v", self, pr.Parent, spam.Eid)
				}
				mine := mkCommit(spam.Eid, ep+2, self, ClassUpdate, ms, 1)
				next := mkCommit(spam.Eid, ep+2, "d", ClassUpdate, ms, 1000)
				step(t, g, next)
				step(t, g, mine)
				headIs(t, g, mine.Eid)
				proposed = true
				break
			}
			p, ep = spam.Eid, ep+1
		}
		if !proposed {
			t.Fatalf("%s never proposed while the spammer committed every 100 ms", self)
		}
	}
}
