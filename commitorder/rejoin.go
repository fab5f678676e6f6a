// Beyond the window: detecting that our final chain lost, and Rejoin.
//
// Rejoin is emitted when (A) a sibling that beats our final commit at a
// remembered fork point was seen and a quorum of other members currently
// hold final an epoch past that fork that is not ours; or (B) commits off
// our chain were seen at or below our root, or a quorum holds final epochs
// we do not know at numbers we hold final, we are not waiting MaxAge for the
// losers of a fork we won to rejoin us, and more members hold another chain
// final than ours; (B) first waits foreignWait for the fork's commits when
// they can still reach us. Only a claim at a number we hold final proves another
// final chain at once; claims newer than our root or older than our memory
// count only after MaxAge without progress (time offline does not count). In
// case (A) a quorum holding our chain final past the fork clears the flag
// instead: the better sibling arrived after everyone had finalised ours.
// Rejoin hands back the outbox and intents and names the vouchers and the
// newest epoch they hold final; the Group is then done.

package commitorder

import (
	"bytes"
	"slices"
	"time"
)

// lostKey identifies the inputs of one checkLost evaluation.
type lostKey struct {
	mut                     uint64
	now, behindSince, wonAt int64
	lost, diverged          bool
	lostEpoch               uint64
}

// progressAt is when we last made progress or started trying to: the later
// of the last head change and the start of the current catch-up.
func (g *Group) progressAt() int64 { return max(g.headSince, g.behindSince) }

// checkLost emits Rejoin when our final branch is known to have lost:
// (A) a sibling that beats our final commit at its fork point was seen, and
// a quorum of members holds final epochs past that fork that are not ours;
// or (B) commits not on our chain were seen at or below our root, we never
// saw the fork (it is older than our history, as for a joiner whose
// Welcome came from a branch that later lost), no other member holds our
// chain final and a quorum holds another chain final.
func (g *Group) checkLost() {
	// Nothing it reads (claims, the tree, root and head, the flags, the
	// clocks) changed since it last found nothing to do: most events
	// between two ticks (profiled: 10% of simulation time).
	key := lostKey{g.mut, g.now, g.behindSince, g.wonAt, g.lost, g.diverged, g.lostEpoch}
	if g.lostKeyOK && g.lostKey == key {
		return
	}
	g.lostKey, g.lostKeyOK = key, true
	waiting := g.wonAt != 0 && g.now-g.wonAt <= int64(g.cfg.MaxAge)
	oldest := g.root.epoch
	if len(g.history) > 0 {
		oldest = g.history[0].epoch
	}
	stalled := g.now-g.progressAt() > int64(g.cfg.MaxAge)
	if !g.lost && !(g.diverged && !waiting) && (waiting || !g.foreignFinalQuorum(oldest, stalled)) {
		g.foreignIdle(waiting)
		return
	}
	support, supportPast := 0, 0
	var vouchers, older []MemberID
	var target claim
	for m, cl := range g.claims {
		if m == g.self {
			continue
		}
		recent := g.now-cl.at <= int64(g.cfg.MaxAge)
		if g.nodes[cl.eid] != nil || g.inHistory(cl.eid) {
			// Support must be current: a member silent for MaxAge (gone,
			// or itself stranded) vouches for nothing.
			if recent {
				support++
				if cl.epoch > g.lostEpoch {
					supportPast++
				}
			}
			continue
		}
		if g.lost {
			if cl.epoch <= g.lostEpoch || cl.epoch < oldest || (cl.epoch > g.root.epoch && !stalled) {
				// Too old to judge, or newer than our root: possibly our
				// own descendant that we have not fetched (we are behind,
				// not beaten) until a catch-up has failed for MaxAge.
				continue
			}
		} else if !recent || cl.epoch < oldest || (cl.epoch > g.root.epoch && !stalled) {
			if recent && cl.epoch < oldest && stalled {
				older = append(older, m)
			}
			// A claim older than anything we remember may be our own
			// ancestor held by a laggard (a joiner knows only its
			// genesis and its parent): it proves nothing.
			// A claim newer than our root may be a descendant of it that
			// we have not fetched yet (a sibling of our head inside the
			// window, as for a joiner whose Welcome arrived late): we are
			// behind, not stranded, unless we have made no progress for
			// MaxAge. Only a foreign epoch at a number we hold final proves
			// another final chain at once.
			continue
		}
		vouchers = append(vouchers, m)
		if cl.epoch > target.epoch || (cl.epoch == target.epoch && bytes.Compare(cl.eid[:], target.eid[:]) < 0) {
			target = cl
		}
	}
	// Claims at numbers we remember: the commits of that fork can still
	// reach us and be judged (case A), so case (B) waits for them.
	judgeable := len(vouchers) > 0 || g.diverged
	if support == 0 && !g.lost {
		// Claims older than our memory count only when we have made no
		// progress for MaxAge and nobody holds our chain final: then they
		// are no laggards on our own ancestry (beyond seed 455; seed 34431
		// shows why support must veto: in a 41-member group eight members
		// still held an ancestor of a joiner's genesis final).
		for _, m := range older {
			cl := g.claims[m]
			vouchers = append(vouchers, m)
			if cl.epoch > target.epoch || (cl.epoch == target.epoch && bytes.Compare(cl.eid[:], target.eid[:]) < 0) {
				target = cl
			}
		}
	}
	q := claimQuorum(len(g.head.members))
	if len(vouchers) < q {
		// A quorum holding our chain final past the fork shows that the
		// better sibling we saw lost there too (it arrived after everyone
		// had finalised): we did not lose. Clearing the flag keeps it from
		// turning a later, ordinary lag into a rejoin (simulator seed
		// 17198: every member kept a stale lost flag after a late rejoin
		// commit). (diverged stays: it carries no epoch to compare claims
		// with, and support that predates the divergence evidence would
		// clear it wrongly — beyond-window seed 220, a joiner welcomed
		// onto the losing side just as its members rejoined.)
		if g.lost && supportPast >= q {
			g.lost, g.lostEpoch = false, 0
			g.lostKeyOK = false
		}
		g.foreignIdle(waiting)
		return
	}
	if !g.lost && support >= len(vouchers) {
		g.foreignIdle(waiting)
		return
	}
	if !g.lost && judgeable {
		// Case (B) decides without the fork choice, by counting heads;
		// wait, bounded, for the commits that let the fork choice decide
		// instead (case A, or wonAt when ours wins). When a partition of
		// two against two heals, the other half's tips arrive before its
		// commits, and both halves count one member (their own half) on
		// their chain against two on another: deciding at once, both
		// rejoined, and a rejoining member serves nobody, so the group
		// never converged (node TestSplitBrainBeyondWindow, about one run
		// in fifteen; testdata/split_tips_before_commits.txt). The tips
		// already asked for the range (FetchRange); foreignWait gives it
		// a retry and its round trip. Claims older than our memory (a
		// joiner's, counted only after MaxAge without progress) have no
		// commits that could decide and do not wait. The evidence need
		// not hold throughout (foreignIdle): it decides at the first
		// moment it holds once the wait is over.
		if g.foreignAt == 0 || g.headSince > g.foreignAt {
			g.foreignAt = max(g.now, 1)
		}
		if g.now-g.foreignAt < int64(g.foreignWait()) {
			return
		}
	}
	slices.Sort(vouchers)
	ids := make([]MsgID, 0, len(g.outbox))
	for id := range g.outbox {
		ids = append(ids, id)
	}
	sortMsgIDs(ids)
	var intents []IntentID
	for _, q := range g.queue {
		intents = append(intents, q.id)
	}
	for _, n := range g.nodes {
		if n.own {
			intents = append(intents, n.intents...)
		}
	}
	if g.prop != nil {
		for _, q := range g.prop.intents {
			intents = append(intents, q.id)
		}
	}
	// In case (B) we never saw the fork: everything we sent may be off the
	// group's chain.
	fork := uint64(0)
	if g.lost {
		fork = g.lostEpoch
	}
	g.emit(Rejoin{Outbox: ids, Intents: intents, ForkEpoch: fork, Target: target.eid, Vouchers: vouchers})
	clear(g.outbox)
	g.done = true
}

// foreignWait is how long case (B) of checkLost waits, from when its
// evidence first holds, for the commits that would let the fork choice
// decide: a range fetch, its retry (Retry later) and Grace for the answer.
func (g *Group) foreignWait() time.Duration { return 2*g.cfg.Retry + g.cfg.Grace }

// foreignIdle is checkLost finding case (B)'s evidence absent now. The
// wait is forgotten once the fork choice has decided (lost, or ours won
// and we wait for the others) or our head has moved since it started
// (progress: whatever comes next is new evidence). Evidence that merely
// comes and goes does not restart it: the quorum against two joiners on a
// losing branch who hold each other's chain final shows only while one
// of their claims is stale, a moment every tip interval or so
// (beyond-window seed 12273).
func (g *Group) foreignIdle(waiting bool) {
	if g.foreignAt != 0 && (g.lost || waiting || g.headSince > g.foreignAt) {
		g.foreignAt = 0
	}
}

// foreignFinalQuorum reports whether a quorum of other members currently
// hold final an epoch we do not know at a number we hold final ourselves
// (oldest History epoch to root): another final chain exists, whether or
// not we have seen any of its commits. A joiner welcomed onto a branch
// that lost may only ever be served commits older than its memory (the
// group's chain can be shorter than the joiner's genesis), which prove
// nothing; the claims do (beyond-window seed 220, and 9944).
//
// Once we have made no progress for MaxAge and no member holds our chain
// final, claims older than our memory count too (as they do as vouchers):
// a joiner welcomed onto a losing branch past the epoch the group has
// reached meanwhile can judge nothing else (beyond-window seed 455).
func (g *Group) foreignFinalQuorum(oldest uint64, stalled bool) bool {
	q := claimQuorum(len(g.head.members))
	if g.ffqMut != g.mut {
		// An upper bound that ignores time (recency, stalling), cached
		// until the claims, the tree or the root change: in a settled
		// group every claim is on our chain and the check costs nothing.
		g.ffqMax, g.ffqMut = g.countForeign(oldest, false, true), g.mut
	}
	if g.ffqMax < q {
		return false
	}
	return g.countForeign(oldest, true, stalled) >= q
}

// countForeign counts claims at epochs we do not know at numbers we hold
// final (and, when stalled and nobody holds our chain final, older ones);
// timed applies the recency bound.
func (g *Group) countForeign(oldest uint64, timed, stalled bool) int {
	n, old, support := 0, 0, 0
	for m, cl := range g.claims {
		if m == g.self || (timed && g.now-cl.at > int64(g.cfg.MaxAge)) || cl.epoch > g.root.epoch {
			continue
		}
		switch {
		case g.nodes[cl.eid] != nil || g.inHistory(cl.eid):
			support++
		case cl.epoch >= oldest:
			n++
		case stalled:
			old++
		}
	}
	if support == 0 || !timed {
		n += old
	}
	return n
}
