package commitorder

import (
	"slices"
	"testing"
	"time"
)

// Scripted adversarial scenarios from the issue, one named test each.

var abcdef = ids("a", "b", "c", "d", "e", "f")

func members(n int) []MemberID { return abcdef[:n] }

// feed steps every group with the events in order.
func feed(t *testing.T, gs []*Group, evs ...Event) {
	t.Helper()
	for _, g := range gs {
		for _, ev := range evs {
			step(t, g, ev)
		}
	}
}

func sameHead(t *testing.T, gs []*Group) EpochID {
	t.Helper()
	h, _ := gs[0].Head()
	for _, g := range gs[1:] {
		if x, _ := g.Head(); x != h {
			t.Fatalf("heads differ: %v vs %v", h, x)
		}
	}
	return h
}

func TestScenarioSiblingsEveryPermutation(t *testing.T) {
	ms := members(5)
	g0 := genesisOf(ms).Eid
	cs := []CommitSeen{
		mkCommit(g0, 2, "a", ClassUpdate, ms, 1),
		mkCommit(g0, 2, "b", ClassAdd, append(ids("z"), ms...), 1),
		mkCommit(g0, 2, "c", ClassUpdate, ms, 1),
		mkCommit(g0, 2, "d", ClassAdd, append(ids("y"), ms...), 1),
		mkCommit(g0, 2, "e", ClassUpdate, ms, 1),
	}
	want := cs[lowest(cs)].Eid
	count := 0
	permutations(len(cs), func(p []int) {
		g := newGroup(t, Config{}, "a", ms)
		for _, i := range p {
			step(t, g, cs[i])
		}
		headIs(t, g, want)
		count++
	})
	if count != 120 {
		t.Fatalf("%d permutations", count)
	}
}

// halves: two partitions each building a chain of n commits on g0.
func halves(ms []MemberID, n int) (left, right []CommitSeen) {
	g0 := genesisOf(ms).Eid
	pl, pr := g0, g0
	for i := range n {
		l := mkCommit(pl, uint64(2+i), ms[0], ClassUpdate, ms, uint64(i))
		r := mkCommit(pr, uint64(2+i), ms[len(ms)-1], ClassUpdate, ms, uint64(100+i))
		left, right = append(left, l), append(right, r)
		pl, pr = l.Eid, r.Eid
	}
	return left, right
}

func TestScenarioShortPartitionHealsByRollback(t *testing.T) {
	ms := members(4)
	cfg := Config{Depth: 4, MaxAge: time.Minute, Grace: time.Second}
	left, right := halves(ms, 2)
	winner := left
	if lowest([]CommitSeen{left[0], right[0]}) == 1 {
		winner = right
	}
	var gs []*Group
	rollbacks := 0
	for i, m := range ms {
		g := newGroup(t, cfg, m, ms)
		mine, theirs := left, right
		if i >= 2 {
			mine, theirs = right, left
		}
		for _, c := range mine {
			step(t, g, c)
		}
		step(t, g, Tick{Now: at(10 * time.Second)})
		// Heal: the other half's chain arrives.
		for _, c := range theirs {
			eff := step(t, g, c)
			if _, ok := findEffect[RollbackTo](eff); ok {
				rollbacks++
			}
		}
		gs = append(gs, g)
	}
	if h := sameHead(t, gs); h != winner[1].Eid {
		t.Fatalf("converged on %v, want the winner's tip", h)
	}
	if rollbacks != 2 {
		t.Fatalf("%d members rolled back, want the losing half (2)", rollbacks)
	}
}

func TestScenarioLongPartitionRejoins(t *testing.T) {
	ms := members(4)
	cfg := Config{Depth: 3, MaxAge: time.Minute, Grace: time.Second}
	left, right := halves(ms, 4)
	lostHalf, wonHalf := left, right
	if lowest([]CommitSeen{left[0], right[0]}) == 0 {
		lostHalf, wonHalf = right, left
	}
	// A member of the losing half: its half finalised its own branch.
	var self, peer MemberID = "a", "b"
	if lostHalf[0].Committer != "a" {
		self, peer = "c", "d"
	}
	g := newGroup(t, cfg, self, ms)
	for i, c := range lostHalf {
		step(t, g, c)
		step(t, g, TipSeen{Member: peer, Eid: c.Eid, Epoch: uint64(2 + i)})
	}
	step(t, g, Tick{Now: at(time.Hour)})
	if r, _ := g.Root(); r == genesisOf(ms).Eid {
		t.Fatal("losing half did not finalise its branch")
	}
	// Heal: the winning sibling of our final commit arrives (parent known
	// only as history) and two members hold the other branch final.
	step(t, g, ParentMissing{Parent: genesisOf(ms).Eid, ParentEpoch: 1, Cid: wonHalf[0].Cid, Class: wonHalf[0].Class, Committer: wonHalf[0].Committer})
	var others []MemberID
	for _, m := range ms {
		if m != self && m != peer {
			others = append(others, m)
		}
	}
	step(t, g, TipSeen{Member: others[0], Eid: wonHalf[3].Eid, Epoch: 5, Root: wonHalf[2].Eid, RootEpoch: 4})
	if g.Done() {
		t.Fatal("rejoined on a single voucher")
	}
	eff := step(t, g, TipSeen{Member: others[1], Eid: wonHalf[3].Eid, Epoch: 5, Root: wonHalf[2].Eid, RootEpoch: 4})
	rj, ok := findEffect[Rejoin](eff)
	if !ok || rj.Target != wonHalf[2].Eid || len(rj.Vouchers) != 2 || rj.ForkEpoch != 1 {
		t.Fatalf("want Rejoin to the winning branch: %+v %s", rj, effectNames(eff))
	}
	if _, err := g.Step(Tick{Now: at(2 * time.Hour)}); err != ErrDone {
		t.Fatalf("group not finished after Rejoin: %v", err)
	}
	// The winning half, seeing the losing sibling, does not rejoin.
	w := newGroup(t, cfg, others[0], ms)
	for _, c := range wonHalf {
		step(t, w, c)
		step(t, w, TipSeen{Member: others[1], Eid: c.Eid, Epoch: c.Epoch})
	}
	step(t, w, Tick{Now: at(time.Hour)})
	step(t, w, ParentMissing{Parent: genesisOf(ms).Eid, ParentEpoch: 1, Cid: lostHalf[0].Cid, Class: lostHalf[0].Class, Committer: lostHalf[0].Committer})
	step(t, w, TipSeen{Member: self, Eid: lostHalf[3].Eid, Epoch: 5, Root: lostHalf[2].Eid, RootEpoch: 4})
	step(t, w, TipSeen{Member: peer, Eid: lostHalf[3].Eid, Epoch: 5, Root: lostHalf[2].Eid, RootEpoch: 4})
	if w.Done() {
		t.Fatal("winning half rejoined")
	}
}

func TestScenarioOffline50EpochsCatchesUp(t *testing.T) {
	ms := members(3)
	cfg := Config{Depth: 4, MaxAge: time.Minute, Grace: time.Second}
	g := newGroup(t, cfg, "c", ms)
	// The others moved 50 epochs on; a tip reveals it.
	var chainCs []CommitSeen
	p := genesisOf(ms).Eid
	for i := range 50 {
		c := mkCommit(p, uint64(2+i), ms[i%2], ClassUpdate, ms, uint64(i))
		chainCs = append(chainCs, c)
		p = c.Eid
	}
	step(t, g, Tick{Now: at(time.Hour)})
	eff := step(t, g, TipSeen{Member: "a", Eid: p, Epoch: 51, Root: chainCs[45].Eid, RootEpoch: 47})
	if _, ok := findEffect[FetchRange](eff); !ok {
		t.Fatalf("no range fetch: %s", effectNames(eff))
	}
	applied := 0
	for i, c := range chainCs {
		eff := step(t, g, c)
		for _, e := range eff {
			if _, ok := e.(Apply); ok {
				applied++
			}
		}
		step(t, g, TipSeen{Member: "a", Eid: c.Eid, Epoch: uint64(2 + i)})
		step(t, g, TipSeen{Member: "b", Eid: c.Eid, Epoch: uint64(2 + i)})
		step(t, g, Tick{Now: at(time.Hour + time.Duration(i+1)*2*time.Second)})
	}
	headIs(t, g, p)
	if applied != 50 || g.Done() {
		t.Fatalf("applied %d, done %v", applied, g.Done())
	}
	if len(g.Retained()) > cfg.Depth+1 {
		t.Fatalf("retains %d states after catching up", len(g.Retained()))
	}
}

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
	for i := range 10 {
		spam := mkCommit(p, ep+1, "d", ClassUpdate, ms, uint64(i))
		step(t, g, spam)
		if h, _ := g.Head(); h == spam.Eid {
			p, ep = spam.Eid, ep+1
			continue
		}
		// Capped: the admin's Remove of the spammer lands on the same parent.
		rm := mkCommit(p, ep+1, "a", ClassRemove, ids("a", "b", "c"), 1)
		step(t, g, rm)
		headIs(t, g, rm.Eid)
		if i != 3 {
			t.Fatalf("spammer capped after %d commits, want 3", i)
		}
		return
	}
	t.Fatal("spammer never capped")
}

func TestScenarioSelfUpdateRacingRemoval(t *testing.T) {
	ms := members(3)
	g0 := genesisOf(ms).Eid
	upd := mkCommit(g0, 2, "c", ClassUpdate, ms, 1)
	rm := mkCommit(g0, 2, "a", ClassRemove, ids("a", "b"), 1)
	for _, order := range [][]CommitSeen{{upd, rm}, {rm, upd}} {
		for _, self := range ms {
			g := newGroup(t, Config{}, self, ms)
			step(t, g, order[0])
			step(t, g, order[1])
			headIs(t, g, rm.Eid)
		}
	}
}

func TestScenarioTwoMembersRemoveEachOther(t *testing.T) {
	ms := members(3)
	g0 := genesisOf(ms).Eid
	cfg := Config{Grace: time.Second, MaxAge: time.Minute}
	ab := mkCommit(g0, 2, "a", ClassRemove, ids("a", "c"), 1)
	ba := mkCommit(g0, 2, "b", ClassRemove, ids("b", "c"), 1)
	win := []CommitSeen{ab, ba}[lowest([]CommitSeen{ab, ba})]
	loser := MemberID("b")
	if win.Committer == "b" {
		loser = "a"
	}
	for _, order := range [][]CommitSeen{{ab, ba}, {ba, ab}} {
		var gs []*Group
		for _, self := range ms {
			g := newGroup(t, cfg, self, ms)
			step(t, g, order[0])
			step(t, g, order[1])
			gs = append(gs, g)
		}
		sameHead(t, gs)
		headIs(t, gs[0], win.Eid)
		// The removed one learns it is out once the epoch is final.
		lg := gs[slices.Index(ms, loser)]
		eff := step(t, lg, Tick{Now: at(2 * time.Minute)})
		if _, ok := findEffect[Removed](eff); !ok {
			t.Fatalf("loser not told it was removed: %s", effectNames(eff))
		}
	}
}

func TestScenarioChildBeforeParent(t *testing.T) {
	TestChildBeforeParentIsHeldAndFetched(t)
}

func TestScenarioBetterSiblingWithheld(t *testing.T) {
	ms := members(4)
	g0 := genesisOf(ms).Eid
	cfg := Config{Grace: time.Second, MaxAge: time.Minute}
	x := mkCommit(g0, 2, "a", ClassUpdate, ms, 1)
	better := mkCommit(g0, 2, "d", ClassRemove, ids("a", "b", "d"), 1)
	// Released inside the window: everyone rolls back to it.
	g := newGroup(t, cfg, "b", ms)
	step(t, g, x)
	eff := step(t, g, better)
	if _, ok := findEffect[RollbackTo](eff); !ok {
		t.Fatalf("no rollback: %s", effectNames(eff))
	}
	headIs(t, g, better.Eid)
	// Withheld while its author sent on the rival: invalid.
	g = newGroup(t, cfg, "b", ms)
	step(t, g, x)
	step(t, g, AppMessageSeen{Eid: x.Eid, Epoch: 2, Sender: "d"})
	step(t, g, better)
	headIs(t, g, x.Eid)
	// Released after the fork point is final: recorded as beyond the
	// window; no rollback and no rejoin without vouchers.
	g = newGroup(t, cfg, "b", ms)
	step(t, g, x)
	for _, m := range ids("a", "c", "d") {
		step(t, g, TipSeen{Member: m, Eid: x.Eid, Epoch: 2})
	}
	step(t, g, Tick{Now: at(2 * time.Second)})
	if r, _ := g.Root(); r != x.Eid {
		t.Fatal("fork point not final")
	}
	eff = step(t, g, better)
	if len(eff) != 0 || g.Done() {
		t.Fatalf("late sibling beyond the window acted on: %s", effectNames(eff))
	}
	headIs(t, g, x.Eid)
}

func TestScenarioEquivocatingCommitter(t *testing.T) {
	TestDoubleCommitOnlyLowestCounts(t)
}

func TestScenarioLoserCrashesMidRollback(t *testing.T) {
	ms := members(3)
	g0 := genesisOf(ms).Eid
	mine := mkCommit(g0, 2, "a", ClassUpdate, ms, 1)
	theirs := mkCommit(g0, 2, "b", ClassUpdate, ms, 1)
	if lowest([]CommitSeen{mine, theirs}) == 0 {
		mine, theirs = theirs, mine
	}
	self := mine.Committer
	mine.Own, mine.Intents = true, []IntentID{{9}}
	g := newGroup(t, Config{}, self, ms)
	step(t, g, IntentQueued{ID: IntentID{9}, Class: ClassUpdate})
	step(t, g, mine)
	step(t, g, OutboxAdded{ID: MsgID{1}, Eid: mine.Eid})
	snap, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	first := step(t, g, theirs)
	// Crash before the effects were carried out: restart from the snapshot
	// and receive the winner again (gossip retransmits it).
	r, err := Unmarshal(Config{}, snap)
	if err != nil {
		t.Fatal(err)
	}
	second := step(t, r, theirs)
	if effectNames(first) != effectNames(second) {
		t.Fatalf("replay differs: %s vs %s", effectNames(first), effectNames(second))
	}
	rs, ok := findEffect[Resend](second)
	if !ok || rs.To != theirs.Eid {
		t.Fatalf("outbox not re-sent after restart: %s", effectNames(second))
	}
	headIs(t, r, theirs.Eid)
	a, _ := g.MarshalBinary()
	b, _ := r.MarshalBinary()
	if string(a) != string(b) {
		t.Fatal("restarted state differs from uninterrupted state")
	}
}

func TestScenarioWelcomeFromLosingCommit(t *testing.T) {
	TestLosingOwnCommitDiscardedWinningSettled(t)
	// The joiner side: a Welcome that (wrongly) went out early for a commit
	// that then lost. The joiner knows its commit; a better sibling plus two
	// members final elsewhere make it discard the Welcome and rejoin.
	ms := members(3)
	g0 := genesisOf(ms).Eid
	add := mkCommit(g0, 2, "a", ClassAdd, append(ids("j"), ms...), 1)
	rm := mkCommit(g0, 2, "b", ClassRemove, ids("a", "b"), 1)
	gen := Genesis{Eid: add.Eid, Epoch: 2, Members: add.Members, HasCommit: true, Parent: g0, Class: ClassAdd, Committer: "a", Cid: add.Cid}
	j, err := New(Config{}, "j", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	step(t, j, ParentMissing{Parent: g0, ParentEpoch: 1, Cid: rm.Cid, Class: rm.Class, Committer: rm.Committer})
	step(t, j, TipSeen{Member: "a", Eid: EpochID{7}, Epoch: 3, Root: rm.Eid, RootEpoch: 2})
	eff := step(t, j, TipSeen{Member: "b", Eid: EpochID{7}, Epoch: 3, Root: rm.Eid, RootEpoch: 2})
	if _, ok := findEffect[Rejoin](eff); !ok {
		t.Fatalf("joiner kept an orphaned Welcome: %s", effectNames(eff))
	}
}

func TestScenarioWinnerReAddsRemovedNoResend(t *testing.T) {
	// The losing branch removed c; we sent on it (c could not read it).
	// The winning branch keeps c and adds z: no automatic re-send (c and z
	// were not members of the orphaned epoch), the entry is surfaced.
	ms := members(3)
	g0 := genesisOf(ms).Eid
	cfg := Config{Grace: time.Second, MaxAge: time.Minute}
	var rmC, keep CommitSeen
	for salt := uint64(0); ; salt++ {
		rmC = mkCommit(g0, 2, "a", ClassRemove, ids("a", "b"), salt)
		keep = mkCommit(g0, 2, "b", ClassAdd, append(ids("z"), ms...), salt)
		keep.Class = ClassRemove // it also removes someone's stale leaf: same class, rank decides
		if lowest([]CommitSeen{rmC, keep}) == 1 {
			break
		}
		rmC = mkCommit(g0, 2, "b", ClassRemove, ids("a", "b"), salt)
		keep = mkCommit(g0, 2, "a", ClassRemove, append(ids("z"), ms...), salt)
		if lowest([]CommitSeen{rmC, keep}) == 1 {
			break
		}
	}
	g := newGroup(t, cfg, "a", ms)
	step(t, g, rmC)
	step(t, g, OutboxAdded{ID: MsgID{5}, Eid: rmC.Eid})
	eff := step(t, g, keep)
	headIs(t, g, keep.Eid)
	if _, ok := findEffect[Resend](eff); ok {
		t.Fatalf("re-sent into an epoch with members the orphaned one lacked: %s", effectNames(eff))
	}
	eff = step(t, g, Tick{Now: at(time.Hour)})
	eff = append(eff, step(t, g, TipSeen{Member: "b", Eid: keep.Eid, Epoch: 2})...)
	s, ok := findEffect[Surface](eff)
	if !ok || !slices.Equal(s.IDs, []MsgID{{5}}) {
		t.Fatalf("not surfaced: %s", effectNames(eff))
	}
}

func TestScenarioForgedCommitterIdentity(t *testing.T) {
	TestInvalidCommitsNeverWin(t)
}

// A joiner whose Welcome arrived late, having heard a commit on a branch
// that forked below its genesis, sees two members claim final an epoch
// numbered like its head that it has not fetched yet (a sibling of its head
// inside the window). That is being behind, not being stranded: it must
// fetch, not rejoin (simulator seed 2592 before the fix).
func TestScenarioLateJoinerClaimNewerThanRootNoRejoin(t *testing.T) {
	members := ids("a", "b", "c", "d")
	gen := Genesis{Eid: EpochID{0x6e, 5}, Epoch: 5, Members: members}
	g, err := New(Config{}, "d", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	mine := mkCommit(gen.Eid, 6, "a", ClassUpdate, members, 1)
	theirs := mkCommit(gen.Eid, 6, "b", ClassUpdate, members, 2)
	step(t, g, Tick{Now: at(10 * time.Millisecond)})
	step(t, g, mine)
	headIs(t, g, mine.Eid)
	// A loser below our genesis, from an orphaned branch we never saw.
	step(t, g, ParentMissing{Parent: EpochID{0x0f, 4}, ParentEpoch: 4, Cid: CommitID{0xcc}, Class: ClassUpdate, Committer: "c"})
	var fetched bool
	for i, m := range []MemberID{"b", "c"} {
		eff := step(t, g, TipSeen{Member: m, Eid: theirs.Eid, Epoch: 6, Root: theirs.Eid, RootEpoch: 6})
		if _, ok := findEffect[Rejoin](eff); ok {
			t.Fatalf("tip %d: rejoin while the claimed epoch may descend from our root: %s", i, effectNames(eff))
		}
		if _, ok := findEffect[FetchRange](eff); ok {
			fetched = true
		}
	}
	if !fetched {
		t.Fatal("no FetchRange for an unknown epoch claimed final")
	}
	eff := step(t, g, theirs)
	if _, ok := findEffect[Rejoin](eff); ok {
		t.Fatalf("rejoin after fetching the sibling: %s", effectNames(eff))
	}
	// Two others hold the sibling final: we defer to it.
	headIs(t, g, theirs.Eid)
}

// A joiner's Welcome may arrive long after the group moved on. Committing
// on its genesis at once could beat, at a fork the group has already
// finalised past the window, the branch everyone is on (simulator seed
// 15343: a stale joiner's removal rolled four epochs back and stranded a
// member). It waits until another member is seen on its epoch or later.
func TestScenarioStaleWelcomeJoinerWaitsForHeartbeat(t *testing.T) {
	members := ids("a", "b", "c")
	gen := Genesis{Eid: EpochID{0x77, 2}, Epoch: 2, Members: members, HasCommit: true,
		Parent: EpochID{0x77, 1}, Class: ClassAdd, Committer: "a", Cid: CommitID{0x77}}
	g, err := New(Config{}, "c", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	step(t, g, IntentQueued{ID: IntentID{1}, Class: ClassRemove})
	eff := step(t, g, Tick{Now: at(time.Minute)})
	if _, ok := findEffect[ProposeCommit](eff); ok {
		t.Fatalf("joiner proposed on an unconfirmed genesis: %s", effectNames(eff))
	}
	// A heartbeat from a member on a newer epoch: we are behind, still no
	// proposal, and we fetch.
	eff = step(t, g, TipSeen{Member: "a", Eid: EpochID{0x77, 5}, Epoch: 5})
	if _, ok := findEffect[ProposeCommit](eff); ok {
		t.Fatalf("proposed while behind: %s", effectNames(eff))
	}
	if _, ok := findEffect[FetchRange](eff); !ok {
		t.Fatalf("no range fetch when a member is ahead: %s", effectNames(eff))
	}
	// In a fresh group, a heartbeat on our genesis confirms it.
	g, err = New(Config{}, "c", gen, t0)
	if err != nil {
		t.Fatal(err)
	}
	step(t, g, IntentQueued{ID: IntentID{1}, Class: ClassRemove})
	step(t, g, Tick{Now: at(time.Minute)})
	eff = step(t, g, TipSeen{Member: "b", Eid: gen.Eid, Epoch: 2})
	if p, ok := findEffect[ProposeCommit](eff); !ok || p.Parent != gen.Eid {
		t.Fatalf("no proposal after a member confirmed our genesis: %s", effectNames(eff))
	}
}
