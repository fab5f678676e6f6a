package node

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/node/api"
	"grove/p2p"
)

// Reachability: how many of a group's other members this device is
// connected to now.
//
// A device cut off from every other member still accepts sends (they wait
// in the outbox, see unheard.go), which used to look exactly like a
// delivered message. So the count is tracked per group (noteReach, on
// every peer connect and disconnect and every change of the head's
// members), shown by Groups and Send, logged once per transition (lost the
// last reachable member / got one back) and counted (reconnections).
// Only members of the head epoch count: a removed member still connected
// hears nothing we send.

// reachState is a group's reachability as last evaluated (actor only).
type reachState struct {
	known     bool // evaluated at least once since the actor started
	reachable int  // other head members connected
	others    int  // other head members
	// cutSince: since when no other member is reachable (zero while one
	// is, or while there is nobody else).
	cutSince time.Time
	// ever: a member was reachable at some point since the start, so a
	// member reachable after a cut is a reconnection (the first connect
	// after a start is not).
	ever       bool
	reconnects int
	wanted     []peer.ID // the set last given to keepConnected
}

// reachTotals are the node-wide reachability counters (Metrics).
type reachTotals struct {
	reconnects atomic.Int64 // groups getting a member back after a cut
	cutOff     atomic.Int64 // groups with no member reachable now
}

// ReachMetrics is a snapshot of the reachability counters.
type ReachMetrics struct {
	// Reconnects counts how often a group got a reachable member back
	// after being cut off from all of them, summed over groups.
	Reconnects int64
	// CutOffGroups is the number of groups with other members of which
	// none is reachable now.
	CutOffGroups int64
}

// ReachMetrics returns the reachability counters. They live apart from
// Metrics (metrics.go) so that either can change without the other.
func (n *Node) ReachMetrics() ReachMetrics {
	return ReachMetrics{Reconnects: n.reach.reconnects.Load(), CutOffGroups: n.reach.cutOff.Load()}
}

// wantedPeers lists the peers this device should stay connected to for
// the group: the head epoch's members other than itself, sorted; none
// once removed.
func (a *groupActor) wantedPeers() []peer.ID {
	if a.phase == phaseRemoved {
		return nil
	}
	self := a.n.net.ID()
	var out []peer.ID
	for p := range a.headMemberPeers() {
		if p != self {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// keepConnecteder is implemented by networks that redial a set of peers
// whenever a connection to one drops (p2p.Host's self-healing dialer);
// set names the group, and an empty peers list ends the set.
type keepConnecteder interface {
	KeepConnected(set string, peers []peer.ID)
}

// The real network must keep satisfying the optional interface: a drift
// in p2p's signature would silently turn redialing off.
var _ keepConnecteder = (*p2p.Host)(nil)

// keepConnected hands the network the peers to keep connected for group
// hexID, if it can keep them.
func (n *Node) keepConnected(hexID string, peers []peer.ID) {
	if k, ok := n.net.(keepConnecteder); ok {
		k.KeepConnected(hexID, peers)
	}
}

// releasePeers ends the keep-connected set of a group this device no
// longer takes part in (left, its actor stopped).
func (n *Node) releasePeers(a *groupActor) {
	n.keepConnected(a.hexID, nil)
	if a.reach.known && a.reach.others > 0 && a.reach.reachable == 0 {
		n.reach.cutOff.Add(-1)
	}
	a.reach = reachState{}
}

// noteReach re-evaluates the group's reachability: on a peer's connect or
// disconnect, and when the head's members change. It logs the transitions
// to and from being cut off, once each, and keeps the network's
// keep-connected set current.
func (a *groupActor) noteReach() {
	wanted := a.wantedPeers()
	if !slices.Equal(wanted, a.reach.wanted) {
		a.reach.wanted = wanted
		a.n.keepConnected(a.hexID, wanted)
	}
	reachable := 0
	if len(wanted) > 0 {
		for _, p := range a.n.net.Peers() {
			if _, ok := slices.BinarySearch(wanted, p); ok {
				reachable++
			}
		}
	}
	r := &a.reach
	wasCut := r.known && r.others > 0 && r.reachable == 0
	isCut := len(wanted) > 0 && reachable == 0
	now := a.n.cfg.Clock.Now()
	switch {
	case isCut && !wasCut:
		r.cutSince = now
		a.n.reach.cutOff.Add(1)
		if r.known && r.reachable > 0 {
			a.log.Info("no member of the group reachable: messages wait in the outbox", "members", len(wanted))
		}
		a.n.emit(api.Event{Kind: api.EventReach, Group: a.hexID, Time: now, Detail: "no member reachable"})
	case !isCut && wasCut:
		a.n.reach.cutOff.Add(-1)
		if reachable > 0 && r.ever {
			r.reconnects++
			a.n.reach.reconnects.Add(1)
			a.log.Info("a member of the group is reachable again", "cut_off_for", now.Sub(r.cutSince).Round(time.Second), "reachable", reachable)
		}
		if reachable > 0 {
			a.n.emit(api.Event{Kind: api.EventReach, Group: a.hexID, Time: now, Detail: "a member is reachable again"})
		}
		r.cutSince = time.Time{}
	}
	r.known, r.reachable, r.others = true, reachable, len(wanted)
	r.ever = r.ever || reachable > 0
}

// reachInfo is the group's reachability for the API, evaluated now.
func (a *groupActor) reachInfo() api.Reach {
	a.noteReach()
	return api.Reach{
		Reachable: a.reach.reachable, Others: a.reach.others,
		CutOffSince: a.reach.cutSince, Waiting: len(a.unheard),
		Reconnects: a.reach.reconnects,
	}
}

// peerDisconnected is peerConnected's counterpart: only reachability
// changes.
func (a *groupActor) peerDisconnected(p peer.ID) {
	a.post(func() {
		if a.headMemberPeers()[p] {
			a.noteReach()
		}
	})
}
