// Avoidance: when we propose a commit for the queued intents.
//
// Intents are committed by value; ProposeCommit carries the whole queue. We
// propose on the head only after our delay on it has elapsed (our position
// in the rank order of the head's members times Delta), so members rarely
// race; a valid commit arriving first moves the head and restarts the delay,
// except a commit over its committer's rate limit (validity.go): the delay
// runs from the newest epoch on our chain made by a commit that was not, so
// a member committing at once on every epoch cannot keep restarting
// everyone else's delay, and our commit on its latest epoch beats its next
// one. When our own commit would be limited (unless every intent removes)
// we still propose, never starving the only member who can make a change,
// but after every other member's delay (members × Delta after the head
// appeared), since any of theirs would beat ours anyway. We do not propose
// while we are not a member of the head, while behind, while a proposal is
// outstanding (it is requeued after Retry or when the head moves), or while
// the head is unconfirmed: it is final (nothing else retained) or we joined
// and have finalised nothing since, and no other member was seen on it or
// later (a joiner also lets Grace pass after joining). A commit made on a
// stale head could beat, below the window, a branch others had finalised.

package commitorder

import (
	"bytes"
	"slices"
	"time"
)

type proposal struct {
	parent  EpochID
	intents []queuedIntent
	at      int64
}

type queuedIntent struct {
	id    IntentID
	class Class
}

// CommitDelay is how long after the head epoch appeared we wait before
// committing on it: our position in the head's rank order times Delta.
func (g *Group) CommitDelay() time.Duration {
	if g.delayOK && g.delayEid == g.head.eid {
		return g.delay
	}
	own := RankOf(g.head.eid, g.self)
	pos := 0
	for _, m := range g.head.members {
		if m == g.self {
			continue
		}
		r := RankOf(g.head.eid, m)
		if bytes.Compare(r[:], own[:]) < 0 {
			pos++
		}
	}
	g.delayEid, g.delay, g.delayOK = g.head.eid, time.Duration(pos)*g.cfg.Delta, true
	return g.delay
}

// requeue puts intents back in front of the queue, in their order.
func (g *Group) requeue(qs []queuedIntent) {
	if len(qs) == 0 {
		return
	}
	g.queue = append(slices.Clone(qs), g.queue...)
}

// carried lists the intents of an own commit with the commit's class.
func carried(n *node) []queuedIntent {
	out := make([]queuedIntent, len(n.intents))
	for i, id := range n.intents {
		out[i] = queuedIntent{id: id, class: n.class}
	}
	return out
}

// maybePropose emits ProposeCommit once our avoidance delay on the head has
// elapsed and nothing suggests the head is stale.
func (g *Group) maybePropose() {
	if g.prop != nil && g.now >= g.prop.at+int64(g.cfg.Retry) {
		g.requeue(g.prop.intents)
		g.prop = nil
	}
	if len(g.queue) == 0 || g.prop != nil || !contains(g.head.members, g.self) || g.behind() || g.unconfirmedHead() {
		return
	}
	if g.now < g.proposeAt() {
		return
	}
	ids := make([]IntentID, len(g.queue))
	for i, q := range g.queue {
		ids[i] = q.id
	}
	g.prop = &proposal{parent: g.head.eid, intents: slices.Clone(g.queue), at: g.now}
	g.queue = g.queue[:0]
	g.emit(ProposeCommit{Parent: g.head.eid, Intents: ids})
}

// proposeAt is when our delay on the head ends (see the file comment).
func (g *Group) proposeAt() int64 {
	allRemove := true
	for _, q := range g.queue {
		allRemove = allRemove && q.class == ClassRemove
	}
	if !allRemove && countOf(g.head.recent, g.self) >= g.cfg.RateLimit {
		// Our commit would be limited: it loses to anyone else's, so let
		// every other member go first.
		return g.head.seenAt + int64(len(g.head.members))*int64(g.cfg.Delta)
	}
	anchor := g.head
	for anchor.limited && anchor.up != nil {
		anchor = anchor.up
	}
	return anchor.seenAt + int64(g.CommitDelay())
}

// unconfirmedHead: no other member has been seen acting on our head or
// later, and either our head is final (nothing else retained) or we joined
// and have finalised nothing since. That is a joiner whose
// Welcome may be stale (delayed while the group moved on) and who may have
// fetched only part of what followed: committing on such a head could beat,
// below the window, a branch others already finalised, so it waits for one
// heartbeat on its head (simulator seeds 15343: a joiner committed on its
// genesis; 28063: a joiner fetched one commit past its genesis, six epochs
// behind the group, and committed on it, the act that vouched for its head
// being that very commit's committer acting on the parent). Everyone
// else's final head has been seen in use by another member (witness, depth
// and age finality need one), so this costs them nothing; a group of one
// has no one to wait for.
func (g *Group) unconfirmedHead() bool {
	h := g.head
	if (h != g.root && !g.fresh) || len(h.members) <= 1 {
		return false
	}
	if g.fresh && g.now < g.root.seenAt+int64(g.cfg.Grace) {
		// A heartbeat on our head may itself be stale (a message delayed
		// past the group's next commits: simulator seed 21337); a joiner
		// lets Grace pass, hearing current tips, before its first commit.
		return true
	}
	for m, a := range g.acts {
		if m == g.self {
			continue
		}
		for _, ep := range a {
			if ep >= h.epoch {
				return false
			}
		}
	}
	return true
}
