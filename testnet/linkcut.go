package testnet

import (
	"errors"
	"sync"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Link cuts are faults at the transport, for in-process clusters: a cut
// peer's connections are closed and every dial to or from it is refused,
// as when its link goes down for longer than TCP holds a silent
// connection. Unlike Partition, which filters above the transport and
// leaves connections open, a cut makes the hosts redial (p2p's keeper),
// rebuild the GossipSub mesh and sync, as real devices must.

// ErrNeedsInProcess is returned by link cuts on a cluster of processes
// (whose transports live elsewhere; chaos cuts real links instead).
var ErrNeedsInProcess = errors.New("testnet: link cuts need an in-process cluster")

// linkCuts is the set of cut peers, shared by every host's gate.
type linkCuts struct {
	mu  sync.RWMutex
	cut map[peer.ID]bool
}

func (l *linkCuts) set(p peer.ID, cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut == nil {
		l.cut = map[peer.ID]bool{}
	}
	if cut {
		l.cut[p] = true
	} else {
		delete(l.cut, p)
	}
}

// blocked reports whether a and b cannot reach each other.
func (l *linkCuts) blocked(a, b peer.ID) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cut[a] || l.cut[b]
}

// linkGate is one host's connection gater over the cluster's cuts. self
// is set once the host exists (its id comes from its key file); until
// then nothing is refused.
type linkGate struct {
	cuts *linkCuts
	mu   sync.Mutex
	self peer.ID
}

func (g *linkGate) setSelf(p peer.ID) {
	g.mu.Lock()
	g.self = p
	g.mu.Unlock()
}

func (g *linkGate) allow(p peer.ID) bool {
	g.mu.Lock()
	self := g.self
	g.mu.Unlock()
	return self == "" || !g.cuts.blocked(self, p)
}

func (g *linkGate) InterceptPeerDial(p peer.ID) bool { return g.allow(p) }

func (g *linkGate) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allow(p) }

// InterceptAccept cannot tell who is calling yet; InterceptSecured can.
func (g *linkGate) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *linkGate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allow(p)
}

func (g *linkGate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// CutLinks cuts p off at the transport: every connection between p and
// any other host is closed and no new one can be made until RestoreLinks.
func (c *Cluster) CutLinks(p *Peer) error {
	if c.cfg.Processes != nil {
		return ErrNeedsInProcess
	}
	c.cuts.set(p.ID, true)
	for _, q := range c.Peers() {
		q.mu.Lock()
		h := q.host
		q.mu.Unlock()
		if h == nil {
			continue
		}
		nw := h.Libp2pHost().Network()
		if q == p {
			for _, o := range nw.Peers() {
				nw.ClosePeer(o)
			}
		} else {
			nw.ClosePeer(p.ID)
		}
	}
	return nil
}

// RestoreLinks lets p connect again; nothing is dialed for it: the
// hosts find each other again on their own.
func (c *Cluster) RestoreLinks(p *Peer) {
	c.cuts.set(p.ID, false)
}
