package commitorder

import (
	"slices"
	"testing"
	"time"
)

// Scripted adversarial scenarios from the issue, one named test each.

var abcdef = ids("a", "b", "c", "d", "e", "f")

func members(n int) []MemberID { return abcdef[:n] }

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

func TestScenarioChildBeforeParent(t *testing.T) {
	TestChildBeforeParentIsHeldAndFetched(t)
}

func TestScenarioEquivocatingCommitter(t *testing.T) {
	TestDoubleCommitOnlyLowestCounts(t)
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
