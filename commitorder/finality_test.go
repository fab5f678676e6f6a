package commitorder

import (
	"slices"
	"testing"
	"time"
)

var abc = ids("alice", "bob", "carol")

func finalised(eff []Effect) []EpochID {
	var out []EpochID
	for _, e := range eff {
		if f, ok := e.(FinaliseEpoch); ok {
			out = append(out, f.Eid)
		}
	}
	return out
}

func TestFinalityByWitnessesAfterGrace(t *testing.T) {
	cfg := Config{Grace: time.Second, MaxAge: time.Hour, Depth: 100, HardDepth: 200}
	g0 := genesisOf(abc).Eid
	g := newGroup(t, cfg, "alice", abc)
	c := mkCommit(g0, 2, "bob", ClassUpdate, abc, 1)
	step(t, g, c)
	step(t, g, TipSeen{Member: "bob", Eid: c.Eid, Epoch: 2})
	if f := finalised(step(t, g, Tick{Now: at(2 * time.Second)})); len(f) != 0 {
		t.Fatalf("final with carol unseen: %v", f)
	}
	// carol acting on the old epoch is no witness.
	step(t, g, AppMessageSeen{Eid: g0, Epoch: 1, Sender: "carol"})
	if f := finalised(step(t, g, Tick{Now: at(3 * time.Second)})); len(f) != 0 {
		t.Fatalf("final without carol on a descendant: %v", f)
	}
	// All witnessed now; final Grace later (a message carol sent on the old
	// epoch just before acting on the new one may still be in flight).
	if f := finalised(step(t, g, AppMessageSeen{Eid: c.Eid, Epoch: 2, Sender: "carol"})); len(f) != 0 {
		t.Fatalf("final without grace after the last witness: %v", f)
	}
	eff := step(t, g, Tick{Now: at(4 * time.Second)})
	if f := finalised(eff); !slices.Equal(f, []EpochID{g0}) {
		t.Fatalf("finalised %v, want genesis (%s)", f, effectNames(eff))
	}
	if g.Known(g0) {
		t.Fatal("final epoch still retained")
	}
	// Grace: witnesses alone do not finalise sooner than Grace.
	g = newGroup(t, cfg, "alice", abc)
	step(t, g, c)
	step(t, g, TipSeen{Member: "bob", Eid: c.Eid, Epoch: 2})
	if f := finalised(step(t, g, TipSeen{Member: "carol", Eid: c.Eid, Epoch: 2})); len(f) != 0 {
		t.Fatalf("final before grace: %v", f)
	}
	if f := finalised(step(t, g, Tick{Now: at(time.Second)})); len(f) != 1 {
		t.Fatal("not final after grace")
	}
}

func chain(t *testing.T, g *Group, from EpochID, epoch uint64, n int, committer MemberID, members []MemberID) []CommitSeen {
	var out []CommitSeen
	for i := range n {
		c := mkCommit(from, epoch+1, committer, ClassRemove, members, uint64(i))
		step(t, g, c)
		out = append(out, c)
		from, epoch = c.Eid, epoch+1
	}
	return out
}

func TestFinalityByDepthNeedsQuorum(t *testing.T) {
	cfg := Config{Grace: time.Second, MaxAge: time.Hour, Depth: 3, HardDepth: 6}
	g0 := genesisOf(abc).Eid
	g := newGroup(t, cfg, "alice", abc)
	cs := chain(t, g, g0, 1, 3, "alice", abc) // our own commits only
	if f := finalised(step(t, g, Tick{Now: at(time.Minute)})); len(f) != 0 {
		t.Fatalf("isolated member finalised by depth: %v", f)
	}
	// One other member seen on our chain is the quorum.
	eff := step(t, g, TipSeen{Member: "carol", Eid: cs[0].Eid, Epoch: 2})
	if f := finalised(eff); !slices.Equal(f, []EpochID{g0}) {
		t.Fatalf("finalised %v", f)
	}
	// Hard depth bounds an isolated member regardless.
	g = newGroup(t, cfg, "alice", abc)
	cs = chain(t, g, g0, 1, 6, "alice", abc)
	if r, _ := g.Root(); r != cs[0].Eid {
		t.Fatalf("root %v after hard depth, want %v", r, cs[0].Eid)
	}
}

func TestFinalityByAge(t *testing.T) {
	cfg := Config{Grace: time.Second, MaxAge: time.Minute, Depth: 100, HardDepth: 200}
	g0 := genesisOf(abc).Eid
	g := newGroup(t, cfg, "alice", abc)
	c := mkCommit(g0, 2, "bob", ClassUpdate, abc, 1)
	step(t, g, c)
	step(t, g, TipSeen{Member: "bob", Eid: c.Eid, Epoch: 2})
	if f := finalised(step(t, g, Tick{Now: at(59 * time.Second)})); len(f) != 0 {
		t.Fatal("final before MaxAge")
	}
	if f := finalised(step(t, g, Tick{Now: at(60 * time.Second)})); len(f) != 1 {
		t.Fatal("not final at MaxAge")
	}
}

func TestLosingOwnCommitDiscardedWinningSettled(t *testing.T) {
	cfg := Config{Grace: time.Second, MaxAge: time.Minute}
	g0 := genesisOf(abc).Eid
	// Both alice and bob commit an Add with a Welcome on g0.
	var own [2]CommitSeen
	for i, m := range ids("alice", "bob") {
		own[i] = mkCommit(g0, 2, m, ClassAdd, append(ids("dan"), abc...), 1)
		own[i].Own, own[i].Welcome, own[i].Intents = true, true, []IntentID{{byte(i + 1)}}
	}
	w := lowest(own[:])
	for i := range own {
		self := own[i].Committer
		g := newGroup(t, cfg, self, abc)
		step(t, g, IntentQueued{ID: own[i].Intents[0], Class: ClassAdd})
		step(t, g, own[i])
		theirs := own[1-i]
		theirs.Own, theirs.Welcome, theirs.Intents = false, false, nil
		step(t, g, theirs)
		headIs(t, g, own[w].Eid)
		var all []Effect
		all = append(all, step(t, g, TipSeen{Member: "carol", Eid: own[w].Eid, Epoch: 2})...)
		all = append(all, step(t, g, Tick{Now: at(time.Minute)})...)
		_, welcomed := findEffect[SendWelcome](all)
		settled, isSettled := findEffect[CommitSettled](all)
		disc, isDisc := findEffect[CommitDiscarded](all)
		drop, _ := findEffect[DropBranch](all)
		if i == w {
			if !welcomed || !isSettled || settled.Cid != own[i].Cid || isDisc {
				t.Fatalf("winner %s: %s", self, effectNames(all))
			}
		} else {
			if welcomed || isSettled || !isDisc || disc.Cid != own[i].Cid || !slices.Equal(drop.Eids, []EpochID{own[i].Eid}) {
				t.Fatalf("loser %s: %s", self, effectNames(all))
			}
			// Its intent is back in the queue and proposed on the new head.
			eff := step(t, g, Tick{Now: at(time.Minute + time.Hour)})
			p, ok := findEffect[ProposeCommit](eff)
			if !ok || p.Parent != own[w].Eid || !slices.Equal(p.Intents, own[i].Intents) {
				t.Fatalf("intent not re-proposed: %s", effectNames(eff))
			}
		}
	}
}

func TestOutboxResendOnlyWithinMembership(t *testing.T) {
	cfg := Config{Grace: time.Second, MaxAge: time.Minute}
	g0 := genesisOf(abc).Eid
	// Losing branch: an update. Winning branches: a removal (members shrink:
	// re-send allowed) or an add of dan (dan never saw the message: not).
	upd := mkCommit(g0, 2, "alice", ClassUpdate, abc, 1)
	shrink := mkCommit(g0, 2, "bob", ClassRemove, ids("alice", "bob"), 1)
	grow := mkCommit(g0, 2, "bob", ClassAdd, append(ids("dan"), abc...), 1)
	for _, tc := range []struct {
		name   string
		win    CommitSeen
		resend bool
	}{{"shrink", shrink, true}, {"grow", grow, false}} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroup(t, cfg, "alice", abc)
			step(t, g, upd)
			step(t, g, OutboxAdded{ID: MsgID{7}, Eid: upd.Eid})
			eff := step(t, g, tc.win)
			rs, ok := findEffect[Resend](eff)
			if ok != tc.resend || (ok && (rs.To != tc.win.Eid || !slices.Equal(rs.IDs, []MsgID{{7}}))) {
				t.Fatalf("resend %v %+v: %s", ok, rs, effectNames(eff))
			}
			if ok {
				step(t, g, OutboxAdded{ID: MsgID{7}, Eid: tc.win.Eid})
			}
			eff = step(t, g, Tick{Now: at(time.Hour)})
			eff = append(eff, step(t, g, TipSeen{Member: "bob", Eid: tc.win.Eid, Epoch: 2})...)
			_, surfaced := findEffect[Surface](eff)
			done, isDone := findEffect[OutboxDone](eff)
			if tc.resend && (!isDone || surfaced || done.IDs[0] != (MsgID{7})) {
				t.Fatalf("resent entry not settled: %s", effectNames(eff))
			}
			if !tc.resend && (!surfaced || isDone) {
				t.Fatalf("unsendable entry not surfaced: %s", effectNames(eff))
			}
		})
	}
}

func TestTipAheadFetchesRangeAndHoldsProposals(t *testing.T) {
	g := newGroup(t, Config{}, "alice", abc)
	step(t, g, IntentQueued{ID: IntentID{1}, Class: ClassUpdate})
	eff := step(t, g, TipSeen{Member: "bob", Eid: EpochID{42}, Epoch: 9})
	fr, ok := findEffect[FetchRange](eff)
	if !ok || fr.Locator[0] != genesisOf(abc).Eid {
		t.Fatalf("want FetchRange: %s", effectNames(eff))
	}
	if _, ok := findEffect[ProposeCommit](step(t, g, Tick{Now: at(time.Hour)})); ok {
		t.Fatal("proposed while known to be behind")
	}
}

// NextDeadline must report witness finality (Grace after the last witness):
// a node that arms its timer from it would otherwise keep the old epoch's
// secrets until some unrelated event arrives.
func TestNextDeadlineCoversWitnessFinality(t *testing.T) {
	cfg := Config{Grace: time.Second, MaxAge: time.Hour, Depth: 100, HardDepth: 200}
	g0 := genesisOf(abc).Eid
	g := newGroup(t, cfg, "alice", abc)
	step(t, g, Tick{Now: at(10 * time.Second)})
	c := mkCommit(g0, 2, "bob", ClassUpdate, abc, 1)
	step(t, g, c)
	step(t, g, Tick{Now: at(20 * time.Second)})
	step(t, g, TipSeen{Member: "bob", Eid: c.Eid, Epoch: 2})
	step(t, g, TipSeen{Member: "carol", Eid: c.Eid, Epoch: 2})
	d := g.NextDeadline()
	if want := at(21 * time.Second); !d.Equal(want) {
		t.Fatalf("next deadline %v, want %v (witnessed at 20s, Grace 1s)", d.Sub(t0), want.Sub(t0))
	}
	if f := finalised(step(t, g, Tick{Now: d.Add(-time.Nanosecond)})); len(f) != 0 {
		t.Fatalf("final before the deadline: %v", f)
	}
	if f := finalised(step(t, g, Tick{Now: d})); !slices.Equal(f, []EpochID{g0}) {
		t.Fatalf("finalised %v at the deadline, want genesis", f)
	}
}

// The last member, having removed everyone else, finalises by age: removed
// members never act on their removal, so waiting for another member on its
// chain would keep the old epochs' secrets forever (simulator seed 6410).
func TestFinalityLastMemberByAge(t *testing.T) {
	cfg := Config{Grace: time.Second, MaxAge: 10 * time.Second, Depth: 100, HardDepth: 200}
	ab := ids("a", "b")
	g0 := genesisOf(ab).Eid
	g := newGroup(t, cfg, "a", ab)
	c := mkCommit(g0, 2, "a", ClassRemove, ids("a"), 1)
	c.Own = true
	step(t, g, c)
	if f := finalised(step(t, g, Tick{Now: at(5 * time.Second)})); len(f) != 0 {
		t.Fatalf("final before MaxAge: %v", f)
	}
	if f := finalised(step(t, g, Tick{Now: at(11 * time.Second)})); !slices.Equal(f, []EpochID{g0}) {
		t.Fatalf("finalised %v after MaxAge, want genesis", f)
	}
	// With b still a member, isolation keeps the states.
	g = newGroup(t, cfg, "a", ids("a", "b", "c"))
	c2 := mkCommit(g0, 2, "a", ClassRemove, ab, 2)
	step(t, g, c2)
	if f := finalised(step(t, g, Tick{Now: at(11 * time.Second)})); len(f) != 0 {
		t.Fatalf("isolated member finalised with b unseen: %v", f)
	}
}

// Regression: a group's only member adding someone waited MaxAge (2 min by
// default) before its Welcome went out, because it did not count as its own
// witness. With nobody else able to commit on the epoch, Grace suffices.
func TestSoleMemberFinalisesAfterGrace(t *testing.T) {
	cfg := Config{Grace: time.Second, MaxAge: time.Hour, Depth: 100, HardDepth: 200}
	solo := ids("alice")
	g0 := genesisOf(solo).Eid
	g := newGroup(t, cfg, "alice", solo)
	add := mkCommit(g0, 2, "alice", ClassAdd, ids("alice", "bob"), 1)
	add.Own, add.Welcome = true, true
	step(t, g, add)
	if f := finalised(step(t, g, Tick{Now: at(time.Second / 2)})); len(f) != 0 {
		t.Fatalf("final before Grace: %v", f)
	}
	eff := step(t, g, Tick{Now: at(time.Second)})
	if f := finalised(eff); !slices.Equal(f, []EpochID{g0}) {
		t.Fatalf("finalised %v, want the sole-member genesis (%s)", f, effectNames(eff))
	}
	if _, ok := findEffect[SendWelcome](eff); !ok {
		t.Fatalf("no Welcome after the sole member's Add became final: %s", effectNames(eff))
	}
	// With two members the founder alone is not enough: bob must be seen.
	ab := ids("alice", "bob")
	g1 := genesisOf(ab).Eid
	g = newGroup(t, cfg, "alice", ab)
	add = mkCommit(g1, 2, "alice", ClassAdd, ids("alice", "bob", "carol"), 1)
	add.Own, add.Welcome = true, true
	step(t, g, add)
	if f := finalised(step(t, g, Tick{Now: at(time.Minute)})); len(f) != 0 {
		t.Fatalf("final with bob unseen: %v", f)
	}
}
