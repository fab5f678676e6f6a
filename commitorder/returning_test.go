package commitorder

import (
	"bytes"
	"testing"
	"time"
)

// Scenarios for members that come back, and for flags that must not
// outlive the evidence that set them.

// chainFrom builds n update commits on parent by committers in turn, each
// epoch with members ms, numbered from epoch+1.
func chainFrom(parent EpochID, epoch uint64, committers, ms []MemberID, n int, salt uint64) []CommitSeen {
	var out []CommitSeen
	for i := range n {
		c := mkCommit(parent, epoch+uint64(i)+1, committers[i%len(committers)], ClassUpdate, ms, salt+uint64(i))
		out = append(out, c)
		parent = c.Eid
	}
	return out
}

// TestScenarioReturningMemberIgnoresCommitsFromBeforeItJoined (testnet):
// a member that joined at epoch 10 goes offline for ten minutes and comes
// back. Sync serves it commits from before it joined (parents it never
// held), a commit of a dead branch it had dropped, and then the group's
// chain. It must catch up, not give the group up as diverged: commits older
// than anything it can judge are ignored, and time spent offline is not
// "no progress" — the catch-up clock starts when it learns it is behind.
func TestScenarioReturningMemberIgnoresCommitsFromBeforeItJoined(t *testing.T) {
	ms := ids("a", "b", "c")
	cfg := Config{Depth: 4, MaxAge: time.Minute, Grace: time.Second}
	// The group's history before c joined: epochs 1..10.
	pre := chainFrom(EpochID{0xee, 1}, 1, ids("a", "b"), ids("a", "b"), 9, 100)
	welcome := pre[len(pre)-1] // created epoch 10 and added c
	gen := Genesis{Eid: welcome.Eid, Epoch: welcome.Epoch, Members: ms,
		HasCommit: true, Parent: welcome.Parent, Class: ClassAdd, Committer: welcome.Committer, Cid: welcome.Cid}
	g, err := New(cfg, "c", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Two epochs together, both final by witnesses.
	chain := chainFrom(gen.Eid, gen.Epoch, ms, ms, 20, 200) // epochs 11..30
	now := time.Duration(0)
	for _, c := range chain[:3] {
		step(t, g, c)
		for _, m := range ids("a", "b") {
			step(t, g, TipSeen{Member: m, Eid: c.Eid, Epoch: c.Epoch})
		}
		now += 2 * time.Second
		step(t, g, Tick{Now: at(now)})
	}
	if _, re := g.Root(); re < 12 {
		t.Fatalf("root at %d, want final past 12", re)
	}
	// A sibling of epoch 12's canonical child (a dead branch) was dropped.
	dead := mkCommit(chain[0].Eid, 12, "a", ClassUpdate, ms, 999)
	deadChild := mkCommit(dead.Eid, 13, "b", ClassUpdate, ms, 998)

	// Offline for ten minutes; the group moves to epoch 30.
	now += 10 * time.Minute
	step(t, g, Tick{Now: at(now)})
	head, root := chain[19], chain[17]
	for _, m := range ids("a", "b") {
		step(t, g, TipSeen{Member: m, Eid: head.Eid, Epoch: head.Epoch, Root: root.Eid, RootEpoch: root.Epoch})
	}
	// Sync serves everything it has, oldest first: commits from before we
	// joined (their parents are older than anything we remember)...
	for _, c := range pre[:7] {
		eff := step(t, g, ParentMissing{Parent: c.Parent, ParentEpoch: c.Epoch - 1, Cid: c.Cid, Class: c.Class, Committer: c.Committer})
		if _, ok := findEffect[FetchParent](eff); ok {
			t.Fatalf("fetches the parent of a commit older than its memory (epoch %d)", c.Epoch-1)
		}
	}
	if g.diverged {
		t.Fatal("commits from before we joined marked us diverged")
	}
	// ...and a dead branch's commit whose parent we dropped (a real,
	// judgeable sign of another chain, but nobody holds it final).
	step(t, g, ParentMissing{Parent: deadChild.Parent, ParentEpoch: 12, Cid: deadChild.Cid, Class: deadChild.Class, Committer: deadChild.Committer})
	// The fetch takes a while; heartbeats keep coming.
	for i := range 20 {
		now += 2 * time.Second
		step(t, g, Tick{Now: at(now)})
		for _, m := range ids("a", "b") {
			step(t, g, TipSeen{Member: m, Eid: head.Eid, Epoch: head.Epoch, Root: root.Eid, RootEpoch: root.Epoch})
		}
		if g.Done() {
			t.Fatalf("gave the group up %d s after coming back, while catching up", 2*(i+1))
		}
	}
	for _, c := range chain[3:] {
		eff := step(t, g, c)
		if _, ok := findEffect[Rejoin](eff); ok {
			t.Fatalf("rejoined while catching up at epoch %d", c.Epoch)
		}
	}
	for _, m := range ids("a", "b") {
		step(t, g, TipSeen{Member: m, Eid: head.Eid, Epoch: head.Epoch, Root: root.Eid, RootEpoch: root.Epoch})
	}
	now += 2 * time.Second
	step(t, g, Tick{Now: at(now)})
	headIs(t, g, head.Eid)
	if g.Done() || g.lost {
		t.Fatalf("done %v lost %v after catching up", g.Done(), g.lost)
	}
}

// TestScenarioStaleLostFlagClearedBySupport (simulator seed 17198): a
// better sibling of our final commit arrives after every member finalised
// ours (a late commit, e.g. a rejoiner's external commit). Once a quorum
// holds our chain final past that fork the sibling lost everywhere; the
// flag must go, or a later ordinary lag (members ahead on epochs we have
// not fetched, a fetch failing for MaxAge) is taken for losing.
func TestScenarioStaleLostFlagClearedBySupport(t *testing.T) {
	ms := ids("a", "b", "c")
	cfg := Config{Depth: 4, MaxAge: time.Minute, Grace: time.Second}
	g := newGroup(t, cfg, "a", ms)
	g0 := genesisOf(ms).Eid
	chain := chainFrom(g0, 1, ids("b", "c"), ms, 8, 300)
	x := chain[0]
	step(t, g, x)
	for _, m := range ids("b", "c") {
		step(t, g, TipSeen{Member: m, Eid: x.Eid, Epoch: 2})
	}
	step(t, g, Tick{Now: at(2 * time.Second)})
	if r, _ := g.Root(); r != x.Eid {
		t.Fatal("x not final")
	}
	// The late sibling: a removal (class 0) beats x's update.
	y := mkCommit(g0, 2, "c", ClassRemove, ids("a", "c"), 301)
	step(t, g, ParentMissing{Parent: g0, ParentEpoch: 1, Cid: y.Cid, Class: y.Class, Committer: y.Committer})
	if !g.lost {
		t.Fatal("a better sibling of a final commit should raise lost")
	}
	// b and c hold our chain final past the fork.
	for _, m := range ids("b", "c") {
		step(t, g, TipSeen{Member: m, Eid: x.Eid, Epoch: 2, Root: x.Eid, RootEpoch: 2})
	}
	if g.lost {
		t.Fatal("lost kept although a quorum holds our branch final past the fork")
	}
	// Later, b and c move ahead and our fetches fail for longer than
	// MaxAge: we are behind, with no sign of another chain.
	ahead, aheadRoot := chain[7], chain[5]
	now := 2 * time.Second
	for range 40 {
		now += 2 * time.Second
		for _, m := range ids("b", "c") {
			step(t, g, TipSeen{Member: m, Eid: ahead.Eid, Epoch: ahead.Epoch, Root: aheadRoot.Eid, RootEpoch: aheadRoot.Epoch})
		}
		eff := step(t, g, Tick{Now: at(now)})
		if rj, ok := findEffect[Rejoin](eff); ok {
			t.Fatalf("rejoined while merely behind: %+v", rj)
		}
	}
	for _, c := range chain[1:] {
		step(t, g, c)
	}
	headIs(t, g, ahead.Eid)
	if g.Done() {
		t.Fatal("finished")
	}
}

// TestScenarioRemovedMemberAloneOnBetterSiblingDefers: d comes back and
// commits on a stale head; its commit beats, on d's view, the sibling the
// group had already finalised, on which the group then removed d. MLS
// gives d none of the epochs after its removal, so it never sees the
// claims that would make it defer. Once nobody but d has acted on its
// branch for MaxAge, while a quorum acted on the sibling that removes it
// and d hears of epochs it cannot have, d follows the others — to its
// removal (simulator seed 3686).
func TestScenarioRemovedMemberAloneOnBetterSiblingDefers(t *testing.T) {
	ms := ids("a", "b", "c", "d")
	cfg := Config{Depth: 4, MaxAge: time.Minute, Grace: time.Second}
	p := genesisOf(ms).Eid
	// The group's branch is committed by a member whose rank on p is worse
	// than d's, so d's own commit wins on d's view.
	var by MemberID
	for _, m := range ids("a", "b", "c") {
		if rd, rm := RankOf(p, "d"), RankOf(p, m); bytes.Compare(rd[:], rm[:]) < 0 {
			by = m
		}
	}
	if by == "" {
		t.Fatal("d ranks last on this genesis; the scenario needs a better rank")
	}
	r := mkCommit(p, 2, by, ClassUpdate, ms, 1)
	r2 := mkCommit(r.Eid, 3, "b", ClassRemove, ids("a", "b", "c"), 2)
	ahead := mkCommit(r2.Eid, 4, "b", ClassUpdate, ids("a", "b", "c"), 3)
	x := mkCommit(p, 2, "d", ClassUpdate, ms, 9)
	x.Own = true
	run := func(t *testing.T, someoneOnOurs bool) (*Group, []Effect) {
		g := newGroup(t, cfg, "d", ms)
		step(t, g, x)
		step(t, g, r)
		step(t, g, r2)
		headIs(t, g, x.Eid)
		for _, m := range ids("b", "c") {
			step(t, g, TipSeen{Member: m, Eid: r2.Eid, Epoch: 3})
			step(t, g, TipSeen{Member: m, Eid: ahead.Eid, Epoch: 4})
		}
		if someoneOnOurs {
			step(t, g, AppMessageSeen{Eid: x.Eid, Epoch: 2, Sender: "a"})
		}
		step(t, g, Tick{Now: at(30 * time.Second)})
		headIs(t, g, x.Eid) // not before MaxAge
		eff, err := g.Step(Tick{Now: at(61 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		return g, eff
	}
	t.Run("alone", func(t *testing.T) {
		g, eff := run(t, false)
		if _, ok := findEffect[Removed](eff); !ok {
			t.Fatalf("want the switch to the removing branch and Removed: %s", effectNames(eff))
		}
		rb, ok := findEffect[RollbackTo](eff)
		if !ok || rb.Eid != p {
			t.Fatalf("want a rollback to the fork point: %s", effectNames(eff))
		}
		if !g.Done() {
			t.Fatal("not finished after Removed")
		}
	})
	t.Run("not alone", func(t *testing.T) {
		// Someone else acted on our branch: the fork choice stands.
		g, eff := run(t, true)
		headIs(t, g, x.Eid)
		if _, ok := findEffect[Removed](eff); ok || g.Done() {
			t.Fatal("removed although another member is on our branch")
		}
	})
}

// TestScenarioJoinerOnLosingBranchSeesOnlyClaims: a joiner welcomed onto a
// branch that lost beyond the window is served only commits older than its
// genesis (the group's chain may even be shorter than its genesis), which
// prove nothing; a quorum of claims at an epoch number it holds final, not
// its own, does (beyond-window seed 220), once the wait for commits that
// could decide by the fork choice is over (rejoin.go, foreignWait).
func TestScenarioJoinerOnLosingBranchSeesOnlyClaims(t *testing.T) {
	ms := ids("a", "b", "c")
	cfg := Config{Depth: 4, MaxAge: time.Minute, Grace: time.Second}
	h := mkCommit(EpochID{0xee, 1}, 3, "a", ClassUpdate, ms, 1) // our genesis parent, epoch 3
	w := mkCommit(h.Eid, 4, "a", ClassAdd, ms, 2)
	gen := Genesis{Eid: w.Eid, Epoch: 4, Members: ms, HasCommit: true, Parent: h.Eid, Class: ClassAdd, Committer: "a", Cid: w.Cid}
	foreign := EpochID{0xf0, 3} // the group's final epoch 3
	t.Run("quorum", func(t *testing.T) {
		g, err := New(cfg, "c", gen, t0)
		if err != nil {
			t.Fatal(err)
		}
		step(t, g, TipSeen{Member: "a", Eid: foreign, Epoch: 3, Root: foreign, RootEpoch: 3})
		if g.Done() {
			t.Fatal("rejoined on one claim")
		}
		step(t, g, TipSeen{Member: "b", Eid: foreign, Epoch: 3, Root: foreign, RootEpoch: 3})
		if g.Done() {
			t.Fatal("rejoined before waiting for the commits that could decide by the fork choice")
		}
		if d := g.NextDeadline(); !d.Equal(t0.Add(g.foreignWait())) {
			t.Fatalf("next deadline %v, want the end of the wait at %v", d, t0.Add(g.foreignWait()))
		}
		eff := step(t, g, Tick{Now: t0.Add(g.foreignWait())})
		rj, ok := findEffect[Rejoin](eff)
		if !ok || rj.Target != foreign || len(rj.Vouchers) != 2 {
			t.Fatalf("want Rejoin to %v: %s %+v", foreign, effectNames(eff), rj)
		}
	})
	t.Run("own history", func(t *testing.T) {
		g, err := New(cfg, "c", gen, t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ids("a", "b") {
			step(t, g, TipSeen{Member: m, Eid: h.Eid, Epoch: 3, Root: h.Eid, RootEpoch: 3})
		}
		if g.Done() {
			t.Fatal("laggards holding our own ancestor final made us rejoin")
		}
	})
}

// TestScenarioClaimsOlderThanMemory: claims at epochs older than anything a
// joiner remembers prove nothing while any member holds its chain final
// (laggards on its own ancestry: simulator seed 34431, eight of 41 members);
// once it has made no progress for MaxAge and nobody holds its chain final,
// they are all it has to go on (beyond-window seed 455: the group's chain
// is shorter than its genesis).
func TestScenarioClaimsOlderThanMemory(t *testing.T) {
	ms := ids("a", "b", "c", "d")
	cfg := Config{Depth: 4, MaxAge: time.Minute, Grace: time.Second}
	h := mkCommit(EpochID{0xee, 1}, 3, "a", ClassUpdate, ms, 1)
	w := mkCommit(h.Eid, 4, "a", ClassAdd, ms, 2)
	gen := Genesis{Eid: w.Eid, Epoch: 4, Members: ms, HasCommit: true, Parent: h.Eid, Class: ClassAdd, Committer: "a", Cid: w.Cid}
	old := EpochID{0xf0, 2} // final at epoch 2: older than our memory (3)
	for _, tc := range []struct {
		name   string
		ours   bool // d holds our chain final
		rejoin bool
	}{{"support vetoes", true, false}, {"no support", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(cfg, "c", gen, t0)
			if err != nil {
				t.Fatal(err)
			}
			var eff []Effect
			for i := range 40 {
				now := time.Duration(i) * 5 * time.Second
				for _, m := range ids("a", "b") {
					step(t, g, TipSeen{Member: m, Eid: old, Epoch: 2, Root: old, RootEpoch: 2})
				}
				if tc.ours {
					step(t, g, TipSeen{Member: "d", Eid: w.Eid, Epoch: 4, Root: h.Eid, RootEpoch: 3})
				}
				eff = step(t, g, Tick{Now: at(now)})
				if g.Done() {
					break
				}
			}
			_, ok := findEffect[Rejoin](eff)
			if ok != tc.rejoin {
				t.Fatalf("rejoin %v, want %v (%s)", ok, tc.rejoin, effectNames(eff))
			}
		})
	}
}
