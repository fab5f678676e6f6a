package node

import (
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/p2p"
)

// metrics are the node's counters. They hold counts only: never plaintext,
// identities or group ids.
type metrics struct {
	messagesIn, messagesOut atomic.Int64
	epochs, forks, resyncs  atomic.Int64
	lastResyncNanos         atomic.Int64
	rejected                [len(rejectReasons)]atomic.Int64 // by rejectReasons index
}

// Metrics is a snapshot of the node's counters, for a Prometheus exporter
// or a test.
type Metrics struct {
	MessagesIn  int64 // MLS messages processed from the network or sync
	MessagesOut int64 // MLS messages this device published
	Epochs      int64 // canonical epochs applied
	Forks       int64 // fork resolutions that undid at least one epoch
	Resyncs     int64 // completed sync exchanges
	// LastResync is how long the last sync exchange took.
	LastResync time.Duration
	Groups     int
	Peers      int
	// MeshPeers is the number of GossipSub mesh links summed over groups
	// (zero on an in-memory network).
	MeshPeers int
	// Rejected counts messages dropped because they can never be part of
	// their group, by reason ("proposal", "malformed", "identity_change",
	// ...; see reject.go). Reasons never seen are absent.
	Rejected map[string]int64
}

// Metrics returns a snapshot of the counters.
func (n *Node) Metrics() Metrics {
	n.mu.Lock()
	groups := len(n.groups)
	topics := make([]p2p.GroupID, 0, groups)
	for _, a := range n.groups {
		if a.wire != nil {
			topics = append(topics, a.wire.topic)
		}
	}
	n.mu.Unlock()
	mesh := 0
	if h, ok := n.net.(interface{ MeshPeers(p2p.GroupID) []peer.ID }); ok {
		for _, t := range topics {
			mesh += len(h.MeshPeers(t))
		}
	}
	var rejected map[string]int64
	for i := range n.metrics.rejected {
		if c := n.metrics.rejected[i].Load(); c > 0 {
			if rejected == nil {
				rejected = map[string]int64{}
			}
			rejected[string(rejectReasons[i])] = c
		}
	}
	return Metrics{
		Rejected:   rejected,
		MessagesIn: n.metrics.messagesIn.Load(), MessagesOut: n.metrics.messagesOut.Load(),
		Epochs: n.metrics.epochs.Load(), Forks: n.metrics.forks.Load(), Resyncs: n.metrics.resyncs.Load(),
		LastResync: time.Duration(n.metrics.lastResyncNanos.Load()),
		Groups:     groups, Peers: len(n.net.Peers()), MeshPeers: mesh,
	}
}
