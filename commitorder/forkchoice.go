// Fork choice: which child of each retained epoch is canonical, and moving
// the head when the answer changes.
//
// Walking from the root, the canonical child of an epoch P is the valid
// child (validity.go) with the lowest (class, rank, cid), where rank is
// RankOf(P, committer); the choice is made at the first divergence and
// descendants never matter. Two exceptions defer to the rest of the group. A
// child that at least claimQuorum other members, each a member of the epoch
// it claims, report final in their tips wins (they can no longer switch; we
// still can); the quorum is that of the branch as it now stands, counted on
// the members of the newest epoch at or below the one claimed that the
// claimant was seen on (branchMembers), so a branch that removed members
// needs only the others it kept; one claim is enough from the only other
// member of the branch the fork choice picks (soleOtherHolds: it is the
// whole rest of that branch, which can then never win). And when,
// MaxAge after the chosen child appeared, we are
// behind, no other member is seen on its branch alone, and a quorum of other
// members is seen on a valid sibling's subtree that removes us (members seen
// only past what we can hold count on it when it is the only such sibling),
// we follow that sibling (abandoned). When the tip moves, switchTo emits RollbackTo
// and Orphaned for the abandoned part of the old chain, Apply for each epoch
// of the new one, oldest first, and re-sends what the outbox allows.

package commitorder

func (g *Group) bestChild(p *node) *node {
	var best *node
	for _, c := range p.children {
		if g.valid(p, c) && (best == nil || g.beats(c, best)) {
			best = c
		}
	}
	return best
}

// beats is the fork-choice order between two valid siblings. The only
// exception is the explorer's negative control (Config's test-only
// arrival-order hook), which lets arrival time decide.
func (g *Group) beats(a, b *node) bool {
	if g.cfg.testingOnlyArrivalOrder && a.seenAt != b.seenAt {
		return a.seenAt < b.seenAt
	}
	return a.key().less(b.key())
}

// canonicalTip walks the fork choice from the root and marks the chain.
func (g *Group) canonicalTip() *node {
	for n := g.head; n != nil; n = n.up {
		n.canonical = false
	}
	held := g.heldElsewhere()
	n := g.root
	n.canonical = true
	for {
		c := g.chosenChild(n, held)
		if c == nil {
			return n
		}
		c.canonical = true
		n = c
	}
}

// chosenChild is the canonical child of n: the fork choice, unless others
// hold another child final (heldElsewhere) or have all gone elsewhere
// (abandoned).
func (g *Group) chosenChild(n *node, held map[*node]*node) *node {
	if h := held[n]; h != nil {
		return h
	}
	c := g.bestChild(n)
	if c != nil {
		if s := g.abandoned(n, c); s != nil {
			return s
		}
	}
	return c
}

// abandoned returns the sibling of c to defer to when nobody but us has
// acted on or committed in c's subtree (and not also in another) for
// MaxAge after c appeared, we are behind (others
// act on epochs we do not hold, at or past our head's number), a quorum of other
// members acted on the valid sibling's subtree, and that subtree removes
// us; nil otherwise. A member that
// cannot follow the group's branch past its own removal there (MLS gives it
// none of the later epochs' secrets) never sees the claims that would make
// it defer; without this it stayed for ever on a better sibling that only
// it had (a returning member's stale commit, simulator seed 3686 once the
// simulator stopped letting removed members process commits). Everyone
// else went the other way, and will have finalised it by age; following
// them leads such a member to its removal. Only a member alone on its
// branch is moved, and only after MaxAge, so the fork choice is untouched
// wherever anyone else could still adopt our branch.
func (g *Group) abandoned(p, c *node) *node {
	if len(p.children) < 2 || g.now < c.seenAt+int64(g.cfg.MaxAge) || !g.behind() {
		return nil
	}
	// Who is on each child's branch: members seen acting in its subtree,
	// and the committers of its commits (a committer is on the branch it
	// extends, even when we cannot process what it did next).
	on := make(map[*node]map[MemberID]bool, len(p.children))
	add := func(ch *node, m MemberID) {
		if m == g.self {
			return
		}
		if on[ch] == nil {
			on[ch] = make(map[MemberID]bool)
		}
		on[ch][m] = true
	}
	for _, ch := range p.children {
		if ch == c {
			// On our own branch only acts count: a committer still there
			// would be heard (tips); one that left may act only on epochs
			// we cannot hold (simulator seed 58634: a member back from
			// offline committed on a stale epoch, then followed the group
			// past the epoch that removed us).
			continue
		}
		var walk func(n *node)
		walk = func(n *node) {
			if n.mlsValid {
				add(ch, n.committer)
			}
			for _, k := range n.children {
				walk(k)
			}
		}
		walk(ch)
	}
	for m, a := range g.acts {
		for eid, ep := range a {
			if ep <= p.epoch {
				continue
			}
			n := g.nodes[eid]
			for n != nil && n.epoch > p.epoch+1 {
				n = n.up
			}
			if n != nil && n.up == p {
				add(n, m)
			}
		}
	}
	// Members seen only on epochs we do not hold, past the fork: once we
	// have fetched what we can, those are epochs we cannot process, past
	// a removal of us. When a single valid sibling's subtree removes us,
	// that is where they are (beyond-window seed 5956: removed on the
	// majority's branch, a member alone on its own better sibling saw only
	// the remover act in what it could hold; the other two acted past its
	// removal, and no quorum was ever seen). Our own branch cannot hide
	// them: a commit on it would be one we can process (we are a member of
	// c), and anyone who made one is on our branch, which stops us here.
	var remover *node
	for _, s := range p.children {
		if s != c && g.removesUs(s) && g.valid(p, s) {
			if remover != nil {
				remover = nil
				break
			}
			remover = s
		}
	}
	if remover != nil && g.behind() {
		for m, a := range g.acts {
			for eid, ep := range a {
				if ep > p.epoch+1 && g.nodes[eid] == nil && !g.inHistory(eid) {
					add(remover, m)
					break
				}
			}
		}
	}
	for m := range on[c] {
		elsewhere := false
		for ch, ms := range on {
			elsewhere = elsewhere || (ch != c && ms[m])
		}
		if !elsewhere {
			// Someone else is on our branch and on no other. (One seen
			// on both has most likely left ours: its own commit on our
			// branch does not keep us there once it acts on the other;
			// simulator seed 58634.)
			return nil
		}
	}
	counts := make(map[*node]int, len(on))
	for ch, ms := range on {
		counts[ch] = len(ms)
	}
	var best *node
	for s, k := range counts {
		if k >= claimQuorum(len(p.members)) && g.valid(p, s) && g.removesUs(s) && (best == nil || s.key().less(best.key())) {
			best = s
		}
	}
	return best
}

// abandonDue reports whether, between from and to, MaxAge passed since
// the canonical child of some fork on our chain appeared: the one time
// abandoned can change its answer without any other state changing.
func (g *Group) abandonDue(from, to int64) bool {
	for n := g.head; n != nil; n = n.up {
		p := n.up
		if p == nil || len(p.children) < 2 {
			continue
		}
		if t := n.seenAt + int64(g.cfg.MaxAge); from < t && t <= to {
			return true
		}
	}
	return false
}

// removesUs reports whether n's subtree holds an epoch we are not a member
// of: the reason we cannot follow it further.
func (g *Group) removesUs(n *node) bool {
	if !contains(n.members, g.self) {
		return true
	}
	for _, c := range n.children {
		if g.removesUs(c) {
			return true
		}
	}
	return false
}

// claimQuorum is how many other members must hold a branch final before
// we defer to it: two (one liar cannot move us), or one in a group of two.
func claimQuorum(members int) int {
	return max(1, min(2, members-1))
}

// heldElsewhere maps a retained epoch p to the child of p that other members
// hold final. Fork choice never overrides finality: a member still inside
// its window defers to a branch that a quorum of others finalised (they can
// no longer switch; it still can). Claims supporting the current canonical
// chain change nothing and cost nothing.
func (g *Group) heldElsewhere() map[*node]*node {
	if g.heldMut != g.mut {
		g.heldVal, g.heldMut = g.scanHeldElsewhere(), g.mut
	}
	return g.heldVal
}

func (g *Group) scanHeldElsewhere() map[*node]*node {
	// Each member has one claim, so counting claims below a node counts
	// distinct members. Marks avoid allocating per call.
	g.claimStamp++
	var touched []*node
	for m, cl := range g.claims {
		n := g.nodes[cl.eid]
		if n == nil || n == g.root || !contains(n.members, m) {
			// A claim counts from a member of the epoch it names (a joiner
			// added on that branch counts; a member the other side removed
			// had left: beyond-window seed 3340, where the only other
			// member of the fork point still in the group was one short of
			// a quorum with the joiner beside it).
			continue
		}
		q := claimQuorum(len(g.branchMembers(m, n)))
		for ; n.up != nil; n = n.up {
			if n.claimStamp != g.claimStamp {
				n.claimStamp, n.claimCount, n.claimQ = g.claimStamp, 0, q
				touched = append(touched, n)
			}
			n.claimCount++
			n.claimQ = min(n.claimQ, q)
		}
	}
	var out map[*node]*node
	for _, n := range touched {
		p := n.up
		if (n.claimCount < n.claimQ && !g.soleOtherHolds(p, n)) || !g.valid(p, n) {
			continue
		}
		if out == nil {
			out = make(map[*node]*node)
		}
		if o := out[p]; o == nil || n.key().less(o.key()) {
			out[p] = n
		}
	}
	return out
}

// soleOtherHolds reports whether the one other member of the branch the
// fork choice picks at p holds n (a sibling of that branch) or a
// descendant of it final. The branch is counted as it now stands: the
// members of the tip reached by the fork choice alone from p's best child
// (not by deferring, so switching our head never changes the answer),
// which must be us and exactly one other. That member is then the whole
// rest of our branch: the members p had and our branch removed are gone
// from it, and nobody else can act there from now on, so with it final
// elsewhere our branch can never win (a member that finalised moves only
// by Rejoin, which needs vouchers holding our branch final, and the one
// who could join us there will not). One claim is then the quorum, as in
// a two-member group: a member that lies about it could as well stall our
// branch by never acting on it, and moves only us, who share that branch
// with nobody else (explorer, testdata/
// explore_partition_removed_witness_converges.txt).
func (g *Group) soleOtherHolds(p, n *node) bool {
	r := g.bestChild(p)
	if r == nil || r == n {
		return false
	}
	t := r
	for c := g.bestChild(t); c != nil; c = g.bestChild(t) {
		t = c
	}
	if len(t.members) != 2 || !contains(t.members, g.self) {
		return false
	}
	other := t.members[0]
	if other == g.self {
		other = t.members[1]
	}
	cl, ok := g.claims[other]
	if !ok {
		return false
	}
	x := g.nodes[cl.eid]
	if x == nil || x == g.root || !contains(x.members, other) {
		return false
	}
	for x.up != nil && x.epoch > n.epoch {
		x = x.up
	}
	return x == n
}

// branchMembers is the membership that decides how many claims a branch
// needs: that of the newest epoch we hold, at or below the epoch base that
// m claims final, on which m was seen acting (its head, usually), else
// that of base. The quorum is that of the branch as it now stands, not of
// the fork point: a branch that removed members needs only the others it
// kept (beyond-window seeds 1752, 2687: the side that finalised had removed
// one of three members, so the one other member left could never make two,
// and a member back from an absence stayed alone on its stale commit for
// ever while that other member waited for it). Each such epoch is one we
// hold and m is a member of, so this moves us only as far as the members
// that branch kept agree.
func (g *Group) branchMembers(m MemberID, base *node) []MemberID {
	best := base
	for eid, ep := range g.acts[m] {
		if ep <= best.epoch {
			continue
		}
		x := g.nodes[eid]
		if x == nil || !contains(x.members, m) {
			continue
		}
		y := x
		for y != nil && y.epoch > base.epoch {
			y = y.up
		}
		if y == base {
			best = x
		}
	}
	return best.members
}

func (g *Group) switchTo(tip *node) {
	if tip == g.head {
		return
	}
	// canonicalTip cleared flags along the old head path and set them along
	// the new chain; nothing else was canonical.
	old := g.head
	f := commonAncestor(old, tip)
	if f != old {
		g.emit(RollbackTo{Eid: f.eid})
		var orphaned []EpochID
		for n := old; n != f; n = n.up {
			orphaned = append(orphaned, n.eid)
		}
		g.emit(Orphaned{Eids: orphaned})
	}
	var path []*node
	for n := tip; n != f; n = n.up {
		path = append(path, n)
	}
	for i := len(path) - 1; i >= 0; i-- {
		g.emit(Apply{Parent: path[i].parent, Cid: path[i].cid, Eid: path[i].eid})
	}
	g.head = tip
	g.headSince = g.now
	g.mut++
	g.bmut++
	if g.prop != nil && g.prop.parent != tip.eid {
		g.requeue(g.prop.intents)
		g.prop = nil
	}
	if f != old {
		g.resendOrphaned()
	}
}

func commonAncestor(a, b *node) *node {
	for a.epoch > b.epoch {
		a = a.up
	}
	for b.epoch > a.epoch {
		b = b.up
	}
	for a != b {
		a, b = a.up, b.up
	}
	return a
}
