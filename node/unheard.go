package node

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/commitorder"
	"grove/mls"
	"grove/p2p"
	"grove/store"
)

// Messages published where nobody could hear them.
//
// A publish on the group topic reaches only the peers GossipSub knows to
// be on it. Right after a (re)start, before the subscriptions have been
// exchanged and the mesh formed, a publish goes nowhere, and GossipSub
// does not push it again once peers appear. The outbox used to be cleared
// when the message's epoch became final here, which says nothing about
// whether anyone got it: a member restarted after a SIGKILL that sent at
// once, then saw its epoch finalised by the others' tips, dropped the
// entry, and when it was killed again the acknowledged message existed
// only in its own log, in an epoch the others no longer kept (anti-entropy
// fetches from the requester's root on). So an entry published without
// any gossip reach stays in the outbox whatever its epoch, and is
// re-encrypted in the head and published again once gossip reaches a
// member; receivers deduplicate by message id.

// meshReporter is implemented by networks that can tell which peers their
// GossipSub mesh holds for a topic (p2p.Host).
type meshReporter interface {
	MeshPeers(p2p.GroupID) []peer.ID
}

// gossipReach reports whether a publish now would reach another member:
// the topic's mesh is not empty, or, on a network that does not report
// its mesh, a member of the head is connected.
func (a *groupActor) gossipReach() bool {
	if m, ok := a.n.net.(meshReporter); ok {
		return len(m.MeshPeers(p2p.GroupID(a.id))) > 0
	}
	members := a.headMemberPeers()
	self := a.n.net.ID()
	for _, p := range a.n.net.Peers() {
		if p != self && members[p] {
			return true
		}
	}
	return false
}

// noteUnheard records that id was just published, encrypted in g, while
// gossip reached no member.
func (a *groupActor) noteUnheard(id [16]byte, g *mls.Group) {
	readers := map[string]bool{}
	for _, m := range g.Members() {
		readers[string(m.Identity)] = true
	}
	if a.unheard == nil {
		a.unheard = map[[16]byte]map[string]bool{}
	}
	a.unheard[id] = readers
	a.log.Debug("published while gossip reached no member: kept for a re-send", "epoch", g.Epoch())
}

// resendUnheard re-sends, once gossip reaches a member, the entries last
// published while it reached none. Same membership rule as every re-send:
// only if everyone in the head could read the epoch the message was
// encrypted in; otherwise it is flagged for the user, as an orphaned
// message is.
func (a *groupActor) resendUnheard() {
	if len(a.unheard) == 0 || a.removed || a.stale {
		return
	}
	_, g := a.head()
	if g == nil || !a.gossipReach() {
		return
	}
	ids := make([][16]byte, 0, len(a.unheard))
	for id := range a.unheard {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y [16]byte) int { return slices.Compare(x[:], y[:]) })
	for _, id := range ids {
		readers := a.unheard[id]
		delete(a.unheard, id)
		if _, err := a.n.db.Outbox(a.id, store.MessageID(id)); err != nil {
			continue // settled or surfaced meanwhile by another path
		}
		leak := false
		for _, m := range g.Members() {
			leak = leak || !readers[string(m.Identity)]
		}
		if leak {
			a.n.db.SetMessageFlags(a.id, store.MessageID(id), store.FlagOrphanedBranch)
			a.n.db.DeleteOutbox(a.id, store.MessageID(id))
			a.log.Warn("message sent unheard not re-sent: the group now has members who could not read it")
			continue
		}
		a.resend(commitorder.MsgID(id))
	}
}
