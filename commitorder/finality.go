// Finality: when the root's canonical child C becomes the new root, and what
// is dropped then.
//
// The root R becomes final (FinaliseEpoch R, DropBranch for every other
// subtree of R) at once when the head is HardDepth epochs past R, and
// otherwise, once Grace has passed since C appeared, at the first of:
// witnesses (every member of R seen acting on a canonical epoch below R, and
// Grace passed since the last of them); depth (the head Depth epochs past R,
// and no member seen acting on, nor a ciphertext pending for, an epoch we do
// not hold numbered past R); age (C appeared MaxAge ago). Witness and depth
// also wait while a ciphertext we could not read yet (CiphertextPending, no
// message read in its epoch since) needs keys that finalising R deletes: in
// R, in a retained epoch outside C's subtree, or in an epoch we do not hold
// numbered past R. Every member having moved on does not mean that what
// they sent before has been read (issue 17). Depth and age need
// a quorum: some other member seen on a canonical epoch below R, unless R or
// the head has a single member or the head no longer includes us. Finalising
// settles our own commit C (CommitSettled, then SendWelcome: RFC 9420,
// Section 14, a Welcome goes out only once its Commit is accepted), discards
// our commits on dropped branches (CommitDiscarded, intents requeued),
// remembers R in History, and emits Removed when neither C nor the head
// keeps us.

package commitorder

import (
	"slices"
)

// advanceFinality makes the root's canonical child the new root while the
// root is final by the rules in the package doc.
func (g *Group) advanceFinality() {
	for {
		r := g.root
		var c *node
		for _, ch := range r.children {
			if ch.canonical {
				c = ch
			}
		}
		if c == nil {
			break
		}
		if !g.rootFinal(r, c) {
			break
		}
		g.finalise(r, c)
		g.witnessedAt = 0
		g.noteWitnesses()
		if g.done {
			return
		}
	}
}

// rootFinal applies the finality rules to the root r whose canonical child
// is c.
func (g *Group) rootFinal(r, c *node) bool {
	if g.head.epoch >= r.epoch+uint64(g.cfg.HardDepth) {
		return true
	}
	if g.now < c.seenAt+int64(g.cfg.Grace) {
		return false
	}
	if g.now < c.seenAt+int64(g.cfg.MaxAge) && g.pendingBlocks(r, c) {
		// A ciphertext we could not read yet needs keys that finalising
		// r would delete: wait for it, up to age finality.
		return false
	}
	deep := g.head.epoch >= r.epoch+uint64(g.cfg.Depth) && !g.unseenAbove(r.epoch)
	if deep || g.now >= c.seenAt+int64(g.cfg.MaxAge) {
		// Depth and age finalise only with a quorum: at least one other
		// member on our chain. An isolated member keeps its states (up to
		// HardDepth) rather than finalising a branch nobody else saw.
		// A member whose head has removed everyone else has nobody left to
		// wait for (removed members never act on their removal).
		if len(r.members) <= 1 || len(g.head.members) <= 1 || !contains(g.head.members, g.self) || g.otherOnChain(r) {
			return true
		}
	}
	if g.witnessedAt == 0 {
		return false
	}
	return g.now >= g.witnessedAt+int64(g.cfg.Grace)
}

// otherOnChain: some member other than us (of any epoch: a joiner counts,
// a member removed below r does not act) was seen on a canonical epoch
// below r.
func (g *Group) otherOnChain(r *node) bool {
	for m, a := range g.acts {
		if m == g.self {
			continue
		}
		for eid, ep := range a {
			if ep > r.epoch {
				if n := g.nodes[eid]; n != nil && n.canonical {
					return true
				}
			}
		}
	}
	return false
}

// noteWitnesses records when the root became fully witnessed.
func (g *Group) noteWitnesses() {
	if g.witnessedAt != 0 || g.witnessMut == g.mut {
		return
	}
	g.witnessMut = g.mut
	var c *node
	for _, ch := range g.root.children {
		if ch.canonical {
			c = ch
		}
	}
	if c != nil && g.allWitnessed(g.root) {
		g.witnessedAt = max(g.now, 1)
	}
}

// allWitnessed reports whether every member of r has been seen acting on a
// canonical epoch below r (we ourselves count when our head is below r).
// The member that failed last time is checked first: it usually still
// fails, which keeps this cheap in large groups.
func (g *Group) allWitnessed(r *node) bool {
	if g.witnessLag != "" && contains(r.members, g.witnessLag) && !g.witnessed(r, g.witnessLag) {
		return false
	}
	for _, m := range r.members {
		if !g.witnessed(r, m) {
			g.witnessLag = m
			return false
		}
	}
	return true
}

func (g *Group) witnessed(r *node, m MemberID) bool {
	if m == g.self {
		// We witness r once our head is past it. For an epoch whose only
		// member is us this alone makes r final (after Grace): nobody else
		// can commit on it, so there is no sibling to wait for — without
		// it a group's founder waited MaxAge before welcoming anyone.
		return g.head.epoch > r.epoch
	}
	for eid, ep := range g.acts[m] {
		if ep <= r.epoch {
			continue
		}
		if n := g.nodes[eid]; n != nil && n.canonical {
			return true
		}
	}
	return false
}

// finalise deletes r (final) and every branch that forked at r other than c.
func (g *Group) finalise(r, c *node) {
	g.emit(FinaliseEpoch{Eid: r.eid})
	var dropped []*node
	for _, s := range r.children {
		if s != c {
			dropped = appendSubtree(dropped, s)
		}
	}
	g.mut++
	g.bmut++
	delete(g.nodes, r.eid)
	for _, d := range dropped {
		delete(g.nodes, d.eid)
		delete(g.hints, d.eid) // its keys are gone with it
	}
	c.up = nil
	g.root = c
	g.fresh = false
	g.history = append(g.history, histEntry{eid: r.eid, epoch: r.epoch, child: c.key()})
	if len(g.history) > g.cfg.History {
		g.history = slices.Delete(g.history, 0, len(g.history)-g.cfg.History)
	}
	if len(dropped) > 0 {
		eids := make([]EpochID, len(dropped))
		for i, d := range dropped {
			eids[i] = d.eid
		}
		g.emit(DropBranch{Eids: eids})
		for _, d := range dropped {
			if d.own {
				g.emit(CommitDiscarded{Cid: d.cid, Intents: d.intents})
				g.requeue(carried(d))
			}
		}
	}
	if c.own {
		g.emit(CommitSettled{Cid: c.cid, Intents: c.intents})
		if c.welcome {
			// RFC 9420, Section 14: a Welcome goes out only once its Commit
			// is accepted.
			g.emit(SendWelcome{Cid: c.cid})
		}
		c.own, c.intents, c.welcome = false, nil, false
	}
	g.pruneActs()
	g.pruneHeld()
	if !contains(c.members, g.self) && !contains(g.head.members, g.self) {
		// (A node cannot process commits after its removal, so a head
		// that re-adds us is only reachable in tests that abstract MLS
		// away; there we are a member again, not removed.)
		ids := make([]MsgID, 0, len(g.outbox))
		for id := range g.outbox {
			ids = append(ids, id)
		}
		sortMsgIDs(ids)
		g.emit(Removed{Outbox: ids})
		clear(g.outbox)
		g.done = true
	}
}

func appendSubtree(out []*node, n *node) []*node {
	out = append(out, n)
	for _, c := range n.children {
		out = appendSubtree(out, c)
	}
	return out
}

// unseenAbove: some member acted on an epoch we do not know, numbered past
// epoch. Either it is on a branch we have not fetched (at a number we hold,
// it certainly is) or we are behind; in both cases a better sibling may be
// on its way, so depth finality waits for the fetch (simulator seed 19912:
// a dropped commit, re-sent 1.7 s later, lost to a branch that had grown
// W deep within Grace in a 35-member group, while tips from members on the
// better branch had already arrived). Age and hard depth still bound it.
func (g *Group) unseenAbove(epoch uint64) bool {
	g.scanUnknown()
	return g.unknownOK && g.unknownMin > epoch
}

// pendingBlocks: a ciphertext hint (CiphertextPending, no message read in
// that epoch since) names an epoch whose keys finalising r would delete: r
// itself, a retained epoch outside c's subtree, or an epoch we do not hold
// numbered past r (it may be on a branch of r other than c). Issue 17: a
// member cut off from its side's commit during a split sent in the fork
// point; witness finality closed it Grace after that member was seen on a
// later epoch, the ciphertexts still pending, and they were lost.
func (g *Group) pendingBlocks(r, c *node) bool {
	for e, ep := range g.hints {
		n := g.nodes[e]
		if n == nil {
			if ep > r.epoch {
				return true
			}
			continue
		}
		if n == r {
			return true
		}
		for n != nil && n.epoch > r.epoch+1 {
			n = n.up
		}
		if n != nil && n != c && n.up == r {
			return true
		}
	}
	return false
}
