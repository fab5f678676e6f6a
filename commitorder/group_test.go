package commitorder

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

var abcd = ids("alice", "bob", "carol", "dave")

// lowest returns the index of the commit the fork choice must pick.
func lowest(cs []CommitSeen) int {
	best := 0
	for i, c := range cs {
		ti := tuple{class: c.Class, rank: RankOf(c.Parent, c.Committer), cid: c.Cid}
		tb := tuple{class: cs[best].Class, rank: RankOf(cs[best].Parent, cs[best].Committer), cid: cs[best].Cid}
		if ti.less(tb) {
			best = i
		}
	}
	return best
}

func TestForkChoiceClassThenRankThenCid(t *testing.T) {
	g0 := genesisOf(abcd).Eid
	cases := []struct {
		name string
		cs   []CommitSeen
		want int
	}{
		{"remove beats update", []CommitSeen{
			mkCommit(g0, 2, "alice", ClassUpdate, abcd, 1),
			mkCommit(g0, 2, "bob", ClassRemove, ids("alice", "bob", "carol"), 1),
		}, 1},
		{"add beats update", []CommitSeen{
			mkCommit(g0, 2, "carol", ClassUpdate, abcd, 1),
			mkCommit(g0, 2, "dave", ClassAdd, append(ids("eve"), abcd...), 1),
		}, 1},
		{"remove beats add", []CommitSeen{
			mkCommit(g0, 2, "carol", ClassAdd, append(ids("eve"), abcd...), 1),
			mkCommit(g0, 2, "dave", ClassRemove, ids("alice", "bob", "dave"), 1),
		}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := lowest(tc.cs); got != tc.want {
				t.Fatalf("reference order picks %d, want %d", got, tc.want)
			}
			permutations(len(tc.cs), func(p []int) {
				g := newGroup(t, Config{}, "alice", abcd)
				for _, i := range p {
					step(t, g, tc.cs[i])
				}
				headIs(t, g, tc.cs[tc.want].Eid)
			})
		})
	}
}

func TestForkChoiceSameClassRank(t *testing.T) {
	g0 := genesisOf(abcd).Eid
	var cs []CommitSeen
	for i, m := range abcd {
		cs = append(cs, mkCommit(g0, 2, m, ClassUpdate, abcd, uint64(i)))
	}
	want := cs[lowest(cs)].Eid
	// The winner is the lowest rank, which must not simply be the first
	// member in name order for every parent (rank rotates).
	permutations(len(cs), func(p []int) {
		g := newGroup(t, Config{}, "bob", abcd)
		for _, i := range p {
			step(t, g, cs[i])
		}
		headIs(t, g, want)
	})
	winners := map[MemberID]bool{}
	for salt := range uint64(16) {
		p := EpochID{byte(salt), 7}
		var sib []CommitSeen
		for _, m := range abcd {
			sib = append(sib, mkCommit(p, 2, m, ClassUpdate, abcd, 0))
		}
		winners[sib[lowest(sib)].Committer] = true
	}
	if len(winners) < 2 {
		t.Fatalf("rank does not rotate across parents: winners %v", winners)
	}
}

func TestDecidedAtFirstDivergence(t *testing.T) {
	g0 := genesisOf(abcd).Eid
	a := mkCommit(g0, 2, "alice", ClassUpdate, abcd, 1)
	b := mkCommit(g0, 2, "bob", ClassUpdate, abcd, 1)
	win, lose := a, b
	if lowest([]CommitSeen{a, b}) == 1 {
		win, lose = b, a
	}
	g := newGroup(t, Config{}, "carol", abcd)
	step(t, g, lose)
	// Pile three commits on the losing branch.
	parent := lose
	for i := range 3 {
		c := mkCommit(parent.Eid, parent.Epoch+1, "dave", ClassRemove, abcd, uint64(i))
		step(t, g, c)
		parent = c
	}
	headIs(t, g, parent.Eid)
	eff := step(t, g, win)
	headIs(t, g, win.Eid)
	rb, ok := findEffect[RollbackTo](eff)
	if !ok || rb.Eid != g0 {
		t.Fatalf("want rollback to genesis, got %s", effectNames(eff))
	}
	orph, _ := findEffect[Orphaned](eff)
	if len(orph.Eids) != 4 || orph.Eids[0] != parent.Eid || orph.Eids[3] != lose.Eid {
		t.Fatalf("orphaned %v", orph.Eids)
	}
	ap, _ := findEffect[Apply](eff)
	if ap.Eid != win.Eid || ap.Parent != g0 {
		t.Fatalf("apply %+v", ap)
	}
}

func TestAdminsGateAddAndRemove(t *testing.T) {
	gen := genesisOf(abcd)
	gen.Admins = ids("alice")
	g, err := New(Config{}, "carol", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	rm := mkCommit(gen.Eid, 2, "bob", ClassRemove, ids("bob", "carol", "dave"), 1)
	upd := mkCommit(gen.Eid, 2, "dave", ClassUpdate, abcd, 1)
	step(t, g, rm)
	step(t, g, upd)
	headIs(t, g, upd.Eid)
	adm := mkCommit(gen.Eid, 2, "alice", ClassRemove, ids("alice", "carol", "dave"), 1)
	step(t, g, adm)
	headIs(t, g, adm.Eid)
}

func TestCommitAfterActingOnRivalIsInvalid(t *testing.T) {
	g0 := genesisOf(abcd).Eid
	a := mkCommit(g0, 2, "alice", ClassUpdate, abcd, 1)
	// dave acts on alice's branch (a message, or a commit on it), then
	// releases a better sibling of it: withheld, so invalid, in any order.
	d := mkCommit(g0, 2, "dave", ClassRemove, ids("alice", "bob", "dave"), 1)
	onA := mkCommit(a.Eid, 3, "dave", ClassUpdate, abcd, 2)
	for i, order := range [][]Event{
		{a, AppMessageSeen{Eid: a.Eid, Epoch: 2, Sender: "dave"}, d},
		{d, a, AppMessageSeen{Eid: a.Eid, Epoch: 2, Sender: "dave"}},
		{d, a, onA},
		{a, d, onA},
	} {
		g := newGroup(t, Config{}, "bob", abcd)
		for _, ev := range order {
			step(t, g, ev)
		}
		if g.valid(g.root, g.nodes[d.Eid]) {
			t.Fatalf("order %d: withheld better sibling counted", i)
		}
		if h, _ := g.Head(); h != a.Eid && h != onA.Eid {
			t.Fatalf("order %d: head %v", i, h)
		}
	}
	// A tip is not replicated evidence (not every member can obtain it), so
	// it does not invalidate.
	g := newGroup(t, Config{}, "bob", abcd)
	step(t, g, a)
	step(t, g, TipSeen{Member: "dave", Eid: a.Eid, Epoch: 2})
	step(t, g, d)
	headIs(t, g, d.Eid)
	// Following a better rival is just following the fork choice: a losing
	// commit whose author moved to the winner stays valid (and loses).
	up := mkCommit(g0, 2, "dave", ClassUpdate, abcd, 3)
	rm := mkCommit(g0, 2, "carol", ClassRemove, ids("carol", "dave", "bob"), 1)
	g = newGroup(t, Config{}, "bob", abcd)
	step(t, g, up)
	step(t, g, rm)
	step(t, g, AppMessageSeen{Eid: rm.Eid, Epoch: 2, Sender: "dave"})
	if !g.valid(g.root, g.nodes[up.Eid]) {
		t.Fatal("losing commit of a member that followed the winner made invalid")
	}
	headIs(t, g, rm.Eid)
	// A forged (invalid) commit claiming alice's identity is no evidence
	// against alice.
	forged := mkCommit(a.Eid, 3, "alice", ClassUpdate, abcd, 5)
	forged.Valid = false
	alt := mkCommit(g0, 2, "alice", ClassRemove, ids("alice", "bob", "carol"), 1)
	g = newGroup(t, Config{}, "bob", abcd)
	step(t, g, a)
	step(t, g, forged)
	step(t, g, alt)
	if !g.valid(g.root, g.nodes[alt.Eid]) {
		t.Fatal("forged commit counted as equivocation evidence")
	}
}

// TestRateLimitDemotesUpdatesNotRemovals: a member over its share still
// commits when nobody else does, loses to any sibling by a member under it
// whatever the ranks, and its removals are never demoted.
func TestRateLimitDemotesUpdatesNotRemovals(t *testing.T) {
	cfg := Config{RateLimit: 2, RateWindow: 4}
	// Salts chosen so that carol ranks below bob on the third parent: the
	// demotion, not the rank, must decide.
	var g *Group
	var parent EpochID
	var epoch uint64
	for salt := uint64(0); ; salt += 10 {
		g = newGroup(t, cfg, "alice", abcd)
		parent, epoch = genesisOf(abcd).Eid, 1
		for i := range 2 {
			c := mkCommit(parent, epoch+1, "bob", ClassUpdate, abcd, salt+uint64(i))
			step(t, g, c)
			headIs(t, g, c.Eid)
			parent, epoch = c.Eid, epoch+1
		}
		if r, b := RankOf(parent, "carol"), RankOf(parent, "bob"); bytes.Compare(r[:], b[:]) > 0 {
			break
		}
	}
	// Over the limit and alone: it counts (nobody is starved).
	alone := mkCommit(parent, epoch+1, "bob", ClassUpdate, abcd, 9)
	step(t, g, alone)
	headIs(t, g, alone.Eid)
	if !g.nodes[alone.Eid].limited {
		t.Fatal("third update in the window not marked limited")
	}
	// A member under the limit beats it on the same parent, even one that
	// ranks worse than bob there.
	beat := mkCommit(parent, epoch+1, "carol", ClassUpdate, abcd, 9)
	step(t, g, beat)
	headIs(t, g, beat.Eid)
	// A removal by the member over its share is not demoted: it beats the
	// update (ClassRemove first).
	rm := mkCommit(parent, epoch+1, "bob", ClassRemove, ids("alice", "bob", "carol"), 9)
	step(t, g, rm)
	headIs(t, g, rm.Eid)
}

// TestRateLimitNeverStarvesSoleAdmin: the only admin adds devices one after
// another and nobody else commits; every add is proposed, valid and
// canonical (issue 17: the ninth and later adds were refused for good, the
// window being counted in commits that only the admin made).
func TestRateLimitNeverStarvesSoleAdmin(t *testing.T) {
	gen := Genesis{Eid: EpochID{0xad, 1}, Epoch: 1, Members: ids("admin"), Admins: ids("admin")}
	g, err := New(Config{}, "admin", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	welcomes := 0
	st := func(ev Event) []Effect {
		eff := step(t, g, ev)
		for _, e := range eff {
			if _, ok := e.(SendWelcome); ok {
				welcomes++
			}
		}
		return eff
	}
	ms := ids("admin")
	parent, epoch := gen.Eid, uint64(1)
	for i := range 12 {
		dev := MemberID(fmt.Sprintf("device%02d", i))
		st(IntentQueued{ID: IntentID{byte(i + 1)}, Class: ClassAdd})
		var prop ProposeCommit
		ok := false
		for range 100 {
			now = now.Add(100 * time.Millisecond)
			if prop, ok = findEffect[ProposeCommit](st(Tick{Now: now})); ok {
				break
			}
		}
		if !ok {
			t.Fatalf("add %d never proposed (recent %v)", i+1, g.head.recent)
		}
		if prop.Parent != parent {
			t.Fatalf("add %d proposed on %v, want %v", i+1, prop.Parent, parent)
		}
		// An add restarts the rate limit's window (a joiner knows nothing
		// before it), so after the first device the admin changes the
		// group's extensions alone: commits that count.
		if i == 0 {
			ms = append(slices.Clone(ms), dev)
			slices.Sort(ms)
		}
		c := mkCommit(parent, epoch+1, "admin", ClassAdd, ms, uint64(i))
		c.Admins, c.Own, c.Intents, c.Welcome = ids("admin"), true, prop.Intents, i == 0
		st(c)
		headIs(t, g, c.Eid)
		parent, epoch = c.Eid, epoch+1
		// The device says hello on the new epoch.
		st(TipSeen{Member: "device00", Eid: c.Eid, Epoch: epoch})
	}
	if n := countOf(g.head.recent, "admin"); n <= DefaultRateLimit {
		t.Fatalf("admin authored %d of the window: the test never went over the limit", n)
	}
	// And every change settles: the add's Welcome goes out.
	for range 200 {
		now = now.Add(time.Second)
		st(Tick{Now: now})
	}
	if welcomes != 1 {
		t.Fatalf("%d welcomes sent for 1 add", welcomes)
	}
	if r, _ := g.Root(); r != parent {
		t.Fatalf("root %v, want the last change %v", r, parent)
	}
}

func TestStepRejectsContradictions(t *testing.T) {
	g0 := genesisOf(abcd).Eid
	g := newGroup(t, Config{}, "alice", abcd)
	c := mkCommit(g0, 2, "bob", ClassUpdate, abcd, 1)
	step(t, g, c)
	bad := []Event{
		func() CommitSeen { x := mkCommit(g0, 3, "bob", ClassUpdate, abcd, 2); return x }(),
		func() CommitSeen { x := mkCommit(g0, 2, "bob", ClassUpdate, abcd, 3); x.Eid = c.Eid; return x }(),
		func() CommitSeen { x := mkCommit(g0, 2, "bob", 7, abcd, 3); return x }(),
		func() CommitSeen { x := mkCommit(g0, 2, "bob", ClassUpdate, ids("a", "a"), 3); return x }(),
		AppMessageSeen{Eid: c.Eid, Epoch: 9, Sender: "bob"},
		OutboxAdded{ID: MsgID{1}, Eid: EpochID{9}},
		IntentQueued{Class: 3},
	}
	for i, ev := range bad {
		before, _ := g.MarshalBinary()
		if _, err := g.Step(ev); !errors.Is(err, ErrInvalidEvent) {
			t.Fatalf("%d: err %v", i, err)
		}
		after, _ := g.MarshalBinary()
		if string(before) != string(after) {
			t.Fatalf("%d: state changed on rejected event", i)
		}
	}
	// Duplicates are harmless.
	if eff := step(t, g, c); len(eff) != 0 {
		t.Fatalf("duplicate produced %s", effectNames(eff))
	}
}

func TestAvoidanceDelayByRank(t *testing.T) {
	cfg := Config{Delta: 100 * time.Millisecond}
	seen := map[time.Duration]bool{}
	for _, m := range abcd {
		g := newGroup(t, cfg, m, abcd)
		d := g.CommitDelay()
		if d%cfg.Delta != 0 || d >= time.Duration(len(abcd))*cfg.Delta {
			t.Fatalf("%s delay %v", m, d)
		}
		seen[d] = true
	}
	if len(seen) != len(abcd) {
		t.Fatalf("positions not distinct: %v", seen)
	}
	// The member with the largest delay proposes only after it elapses and
	// not at all if a valid commit lands first.
	var last MemberID
	for _, m := range abcd {
		g := newGroup(t, cfg, m, abcd)
		if g.CommitDelay() == 3*cfg.Delta {
			last = m
		}
	}
	g := newGroup(t, cfg, last, abcd)
	step(t, g, IntentQueued{ID: IntentID{1}, Class: ClassUpdate})
	if eff := step(t, g, Tick{Now: at(250 * time.Millisecond)}); len(eff) != 0 {
		t.Fatalf("proposed early: %s", effectNames(eff))
	}
	other := mkCommit(genesisOf(abcd).Eid, 2, "x", ClassUpdate, abcd, 1)
	for _, m := range abcd {
		if m != last {
			other = mkCommit(genesisOf(abcd).Eid, 2, m, ClassUpdate, abcd, 1)
			break
		}
	}
	step(t, g, other)
	eff := step(t, g, Tick{Now: at(310 * time.Millisecond)})
	if p, ok := findEffect[ProposeCommit](eff); ok {
		t.Fatalf("proposed on superseded parent: %+v", p)
	}
	// On the new head our delay restarts from when it was seen.
	d := g.CommitDelay()
	eff = step(t, g, Tick{Now: at(250*time.Millisecond + d)})
	p, ok := findEffect[ProposeCommit](eff)
	if !ok || p.Parent != other.Eid || len(p.Intents) != 1 {
		t.Fatalf("want proposal on new head, got %s", effectNames(eff))
	}
}

// TestDeferToSoleOtherMember: one claim moves us when its claimant is the
// only other member of the branch the fork choice picks (our branch
// removed everyone else: the explorer's stall after a partition, testdata/
// explore_partition_removed_witness_converges.txt), and not when anyone
// else is still a member of that branch (they could still act on it, and
// one liar must not move us).
func TestDeferToSoleOtherMember(t *testing.T) {
	cfg := Config{Depth: 4, MaxAge: time.Minute, Grace: time.Second}
	for _, tc := range []struct {
		name    string
		members []MemberID
		ours    []MemberID // after a's removal on the better branch
		theirs  []MemberID // after b's add on the worse branch
		defers  bool
	}{
		{"sole other member", ids("a", "b", "c"), ids("a", "b"), ids("a", "b", "c", "d"), true},
		{"another member left", ids("a", "b", "c", "d"), ids("a", "b", "c"), ids("a", "b", "c", "d", "e"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroup(t, cfg, "a", tc.members)
			gen := genesisOf(tc.members).Eid
			ours := mkCommit(gen, 2, "a", ClassRemove, tc.ours, 1)
			theirs := mkCommit(gen, 2, "b", ClassAdd, tc.theirs, 2)
			step(t, g, ours)
			step(t, g, theirs)
			headIs(t, g, ours.Eid)
			step(t, g, TipSeen{Member: "b", Eid: theirs.Eid, Epoch: 2, Root: theirs.Eid, RootEpoch: 2})
			if tc.defers {
				headIs(t, g, theirs.Eid)
			} else {
				headIs(t, g, ours.Eid)
			}
		})
	}
}
