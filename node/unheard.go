package node

import (
	"slices"
	"time"

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
		return len(m.MeshPeers(a.wire.topic)) > 0
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

// resendUnheard re-sends, once gossip reaches a member and a member's tip
// shows that our head is current, the entries last published while gossip
// reached none (or replayed after a restart, see published). Same membership rule as every re-send:
// only if everyone in the head could read the epoch the message was
// encrypted in; otherwise it is flagged for the user, as an orphaned
// message is.
func (a *groupActor) resendUnheard() {
	if len(a.unheard) == 0 || a.phase != phaseActive {
		return
	}
	_, g := a.head()
	// Only once caught up with a member: re-sent in a head the others
	// have left (as after a restart, before the sync), an entry would be
	// lost again.
	if g == nil || !a.caughtUp || !a.gossipReach() {
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

// outboxLinger is how long an outbox entry commitorder has settled is kept
// before it is deleted. "Heard" above means only that GossipSub's mesh for
// the topic was not empty: Publish returns once the message is queued for
// the mesh peers, not once it is on the wire, let alone received. A device
// killed in between (SIGKILL, a crash) lost a message it had acknowledged
// when the entry went at once: commitorder settles a message sent on an
// epoch that is already final the moment it is published, and nothing
// re-sent it after the restart. Kept this long, such an entry is replayed
// after the restart (replayOutbox), and receivers deduplicate by message
// id. The window covers the local send queue, which drains in
// milliseconds; losses on the network after that are gossip's and
// anti-entropy's to repair. No member acknowledges an application message,
// and waiting for indirect evidence (a sync that served it, a later
// message from each member) would keep entries without bound when the
// evidence never comes, replaying all of them after every restart.
const outboxLinger = 2 * time.Second

// settle marks an outbox entry settled: dropSettled deletes it once it has
// not been published for outboxLinger. A re-publish (resendUnheard,
// resendAfterCut) settles it again and restarts the wait.
func (a *groupActor) settle(id [16]byte) {
	if a.settled == nil {
		a.settled = map[[16]byte]time.Time{}
	}
	a.settled[id] = a.n.cfg.Clock.Now()
}

// dropSettled deletes the outbox entries settled at least outboxLinger ago.
// The deletion is not synced: lost in a crash, it only means one more
// replay of a message receivers already hold.
func (a *groupActor) dropSettled() {
	if len(a.settled) == 0 {
		return
	}
	now := a.n.cfg.Clock.Now()
	for id, at := range a.settled {
		if now.Sub(at) < outboxLinger {
			continue
		}
		delete(a.settled, id)
		if a.unheard[id] != nil {
			continue // published unheard meanwhile: resendUnheard's now
		}
		a.n.db.DeleteOutbox(a.id, store.MessageID(id))
	}
}
