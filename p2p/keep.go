package p2p

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// Keeping connections. libp2p dials a peer only when asked: a connection
// that drops (the peer's link went away for a minute, a NAT mapping
// expired, the peer restarted) stays dropped until something dials again,
// and nothing did: the peer file is dialed once at start, mDNS only finds
// peers on the LAN, and rendezvous needs a DHT. So the owner of the host
// (the node) names the peers it needs, in sets (one per group), and the
// host redials every named peer that is not connected, with capped
// exponential backoff and jitter, from every address the peerstore knows.
// A change of the local network (an address or an interface that comes or
// goes) makes the peers worth dialing again at once, as does a new address
// learned for a peer (mDNS, rendezvous, or the owner's AddPeerAddrs: the
// node passes on the addresses in members' tips).
//
// The backoff answers "is it there yet?" when nothing says; after a fault
// longer than a few steps it has grown to tens of seconds, and a link
// restored a moment after a failed attempt stayed unused until the next
// (a partition heals without any local interface changing). So two signs
// that a peer is reachable again cut the wait short (hint): news of the
// peer itself (its signed tip relayed by another member, its mDNS answer:
// AddPeerAddrs and noteAddrs, even with no new address), and any kept
// peer connecting (the network works again: after a restore the first
// connection, dialed or accepted, is followed by the others within a
// fraction of a second instead of each waiting out its own backoff). A
// hint resets the peer's backoff and makes it due within keepHintJitter,
// at most once per keepHintEvery, so a peer that is alive but unreachable
// from here (its tips keep coming through others) costs one dial per
// keepHintEvery at most.

// Redial timing: the first attempt waits between keepBackoffMin/2 and
// keepBackoffMin, each failure doubles the wait up to keepBackoffMax (with
// jitter, so that peers that lost each other at the same moment do not
// dial each other at the same moment: two simultaneous TCP dials between
// listen ports can make a simultaneous open that fails the handshake).
const (
	keepBackoffMin = time.Second
	keepBackoffMax = time.Minute
	// keepDialTimeout bounds one redial.
	keepDialTimeout = 10 * time.Second
	// ifacePollInterval is how often the interfaces are checked. libp2p
	// reports changes of its own addresses (EvtLocalAddressesUpdated), but
	// not a link going down and up under an address that stays, after
	// which every peer is worth dialing again; there is no event for that,
	// so the interface list is read (one netlink dump) this often.
	ifacePollInterval = 2 * time.Second
	// keepHintEvery is the least time between two hints for one peer.
	keepHintEvery = 3 * time.Second
	// keepHintJitter spreads hinted dials: both ends of a restored link
	// usually get their hints at the same moment (each other's tips), and
	// two simultaneous dials can fail each other's handshake.
	keepHintJitter = 500 * time.Millisecond
	// keptAddrTTL is how long a kept peer's identified listen addresses
	// stay in the peerstore after it disconnects (libp2p forgets them
	// after minutes, and a redial loop needs them for as long as it runs).
	keptAddrTTL = 7 * 24 * time.Hour
)

// KeepStatus is how connected a set of kept peers is.
type KeepStatus struct {
	// Wanted is the number of peers in the set.
	Wanted int
	// Connected is how many of them are connected now.
	Connected int
	// NoneSince is when the set last had no connected peer: the time the
	// last one disconnected, or the set was declared if none has been
	// connected since. Zero while a peer of the set is connected or the
	// set is empty.
	NoneSince time.Time
}

// Keeper is implemented by networks that keep connections to chosen peers
// alive. The node declares each group's members as a set.
type Keeper interface {
	// KeepConnected replaces the peers of the named set; a nil or empty
	// list removes the set. This host's own ID is ignored. The network
	// redials every peer of every set while it is not connected.
	KeepConnected(set string, peers []peer.ID)
	// KeepStatus reports the set's connectivity (zero for an unknown set).
	KeepStatus(set string) KeepStatus
}

var _ Keeper = (*Host)(nil)

// keeper is the Host's state for KeepConnected.
type keeper struct {
	mu        sync.Mutex
	sets      map[string]map[peer.ID]struct{}
	noneSince map[string]time.Time
	peers     map[peer.ID]*keptPeer // the union of sets
	// wake (capacity 1) tells keepLoop to look again at once.
	wake chan struct{}

	redials, reconnects int64 // guarded by mu
	hints               int64 // guarded by mu: hint calls that cut a wait short
}

// keptPeer is the redial state of one kept peer.
type keptPeer struct {
	sets    int           // how many sets name it
	wait    time.Duration // the next backoff step
	due     time.Time     // zero: not scheduled (connected or dialing)
	dialing bool
	hinted  time.Time // the last hint (see hint)
}

// hint makes a disconnected kept peer due soon, with its backoff reset,
// unless it is being dialed, is due soon anyway, or was hinted within
// keepHintEvery (k.mu held). It reports whether it did.
func (kp *keptPeer) hint(now time.Time) bool {
	if kp.dialing || kp.due.IsZero() || kp.due.Sub(now) <= keepHintJitter || now.Sub(kp.hinted) < keepHintEvery {
		return false
	}
	kp.wait = keepBackoffMin
	kp.due = now.Add(rand.N(keepHintJitter + 1))
	kp.hinted = now
	return true
}

func newKeeper() *keeper {
	return &keeper{
		sets:      make(map[string]map[peer.ID]struct{}),
		noneSince: make(map[string]time.Time),
		peers:     make(map[peer.ID]*keptPeer),
		wake:      make(chan struct{}, 1),
	}
}

func (k *keeper) poke() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// jittered returns a delay between d/2 and d.
func jittered(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// KeepConnected implements Keeper.
func (n *Host) KeepConnected(set string, peers []peer.ID) {
	k := n.keep
	now := time.Now()
	want := make(map[peer.ID]struct{}, len(peers))
	for _, p := range peers {
		if p != "" && p != n.h.ID() {
			want[p] = struct{}{}
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for p := range k.sets[set] {
		kp := k.peers[p]
		if kp.sets--; kp.sets == 0 {
			delete(k.peers, p)
		}
	}
	if len(want) == 0 {
		delete(k.sets, set)
		delete(k.noneSince, set)
		return
	}
	k.sets[set] = want
	connected := 0
	for p := range want {
		kp := k.peers[p]
		if kp == nil {
			kp = &keptPeer{wait: keepBackoffMin}
			k.peers[p] = kp
		}
		kp.sets++
		if n.connected(p) {
			connected++
		} else if kp.due.IsZero() && !kp.dialing {
			kp.due = now // a new peer is dialed at once
		}
	}
	if connected > 0 {
		delete(k.noneSince, set)
	} else if _, ok := k.noneSince[set]; !ok {
		k.noneSince[set] = now
	}
	k.poke()
}

// KeepStatus implements Keeper.
func (n *Host) KeepStatus(set string) KeepStatus {
	k := n.keep
	k.mu.Lock()
	defer k.mu.Unlock()
	s := KeepStatus{Wanted: len(k.sets[set])}
	for p := range k.sets[set] {
		if n.connected(p) {
			s.Connected++
		}
	}
	if s.Connected == 0 && s.Wanted > 0 {
		s.NoneSince = k.noneSince[set]
		if s.NoneSince.IsZero() {
			// The last disconnect is not processed yet.
			s.NoneSince = time.Now()
		}
	}
	return s
}

func (n *Host) connected(p peer.ID) bool {
	c := n.h.Network().Connectedness(p)
	return c == network.Connected || c == network.Limited
}

// startKeeper starts keepLoop; it subscribes before returning so that no
// connectedness change is missed.
func (n *Host) startKeeper() error {
	sub, err := n.h.EventBus().Subscribe([]any{
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtLocalAddressesUpdated),
	})
	if err != nil {
		return fmt.Errorf("p2p: event bus: %w", err)
	}
	if !n.goOwned(func() { n.keepLoop(sub) }) {
		sub.Close()
	}
	return nil
}

// keepLoop redials kept peers when they are due, and reschedules them on
// connectivity events and network changes.
func (n *Host) keepLoop(sub event.Subscription) {
	defer sub.Close()
	k := n.keep
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	poll := time.NewTicker(ifacePollInterval)
	defer poll.Stop()
	ifaces := interfacesFingerprint()
	for {
		timer.Reset(n.dialDue())
		select {
		case <-n.ctx.Done():
			return
		case <-k.wake:
		case <-timer.C:
		case <-poll.C:
			if f := interfacesFingerprint(); f != ifaces {
				ifaces = f
				n.log.Debug("network interfaces changed; redialing kept peers")
				n.networkChanged()
			}
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch ev := e.(type) {
			case event.EvtPeerConnectednessChanged:
				n.keptConnectedness(ev.Peer, ev.Connectedness)
			case event.EvtPeerIdentificationCompleted:
				n.keptIdentified(ev)
			case event.EvtLocalAddressesUpdated:
				if ev.Diffs {
					n.log.Debug("local addresses changed; redialing kept peers")
					n.networkChanged()
				}
			}
		}
	}
}

// dialDue starts a redial of every kept peer that is due and returns how
// long until the next one is.
func (n *Host) dialDue() time.Duration {
	k := n.keep
	now := time.Now()
	next := time.Hour
	k.mu.Lock()
	defer k.mu.Unlock()
	for p, kp := range k.peers {
		if kp.dialing || kp.due.IsZero() {
			continue
		}
		if n.connected(p) {
			kp.due = time.Time{}
			kp.wait = keepBackoffMin
			continue
		}
		if wait := kp.due.Sub(now); wait > 0 {
			next = min(next, wait)
			continue
		}
		if len(n.h.Peerstore().Addrs(p)) == 0 {
			// Nowhere to dial: wait for an address (noteAddrs) or
			// the next step.
			kp.due = now.Add(jittered(kp.wait))
			kp.wait = min(2*kp.wait, keepBackoffMax)
			next = min(next, kp.due.Sub(now))
			continue
		}
		kp.dialing = true
		kp.due = time.Time{}
		k.redials++
		if !n.goOwned(func() { n.redial(p) }) {
			kp.dialing = false
		}
	}
	return next
}

// redial dials p once from every known address and schedules the next
// attempt if it failed.
func (n *Host) redial(p peer.ID) {
	// Our own backoff decides when to dial; the swarm's per-address
	// backoff (which grows to minutes) would otherwise refuse the dial
	// after a long outage without trying.
	if sw, ok := n.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
	ctx, cancel := context.WithTimeout(n.ctx, keepDialTimeout)
	err := n.h.Connect(ctx, peer.AddrInfo{ID: p})
	cancel()
	k := n.keep
	k.mu.Lock()
	defer k.mu.Unlock()
	kp := k.peers[p]
	if err == nil {
		k.reconnects++
		n.log.Debug("redialed kept peer", "peer", p)
	} else {
		n.log.Debug("redial failed", "peer", p, "err", err)
	}
	if kp == nil { // no longer kept
		return
	}
	kp.dialing = false
	if err == nil {
		kp.wait = keepBackoffMin
		return
	}
	kp.due = time.Now().Add(jittered(kp.wait))
	kp.wait = min(2*kp.wait, keepBackoffMax)
	k.poke()
}

// keptConnectedness updates the sets' NoneSince and schedules a redial of
// a kept peer that disconnected.
func (n *Host) keptConnectedness(p peer.ID, c network.Connectedness) {
	k := n.keep
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	kp := k.peers[p]
	if kp == nil {
		return
	}
	up := c == network.Connected || c == network.Limited
	if up {
		kp.wait = keepBackoffMin
		kp.due = time.Time{}
		hinted := 0
		for q, other := range k.peers {
			if q != p && !n.connected(q) && other.hint(now) {
				hinted++
			}
		}
		if hinted > 0 {
			k.hints += int64(hinted)
			n.log.Debug("kept peer connected: redialing the others soon", "peer", p, "peers", hinted)
			k.poke()
		}
	} else if !kp.dialing && kp.due.IsZero() {
		kp.due = now.Add(jittered(kp.wait))
	}
	for set, members := range k.sets {
		if _, ok := members[p]; !ok {
			continue
		}
		if up {
			delete(k.noneSince, set)
			continue
		}
		if _, ok := k.noneSince[set]; ok {
			continue
		}
		any := false
		for q := range members {
			if n.connected(q) {
				any = true
				break
			}
		}
		if !any {
			k.noneSince[set] = now
		}
	}
}

// keptIdentified keeps the listen addresses a kept peer announced for as
// long as it is kept, so that it can be redialed after a long outage.
func (n *Host) keptIdentified(ev event.EvtPeerIdentificationCompleted) {
	k := n.keep
	k.mu.Lock()
	_, kept := k.peers[ev.Peer]
	k.mu.Unlock()
	if kept && len(ev.ListenAddrs) > 0 {
		n.h.Peerstore().AddAddrs(ev.Peer, ev.ListenAddrs, keptAddrTTL)
	}
}

// networkChanged makes every disconnected kept peer due now, with its
// backoff reset: addresses that failed on the old network may work on the
// new one.
func (n *Host) networkChanged() {
	k := n.keep
	now := time.Now()
	k.mu.Lock()
	for _, kp := range k.peers {
		kp.wait = keepBackoffMin
		if !kp.dialing {
			kp.due = now
		}
	}
	k.mu.Unlock()
	n.refreshMDNS()
}

// AddPeerAddrs records addresses of p that the owner learned outside
// libp2p (the node: from a group member's signed tip), valid for ttl (a
// peerstore TTL only ever extends). If p is kept, not connected and an
// address is new, it is redialed at once. The caller vouches that the
// addresses are p's to announce; a wrong one only costs a failed dial
// (the handshake checks the peer id).
func (n *Host) AddPeerAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	if n.isClosed() || p == "" {
		return
	}
	n.noteAddrs(peer.AddrInfo{ID: p, Addrs: addrs}, ttl)
}

// noteAddrs records addresses learned for a peer (mDNS, rendezvous); a
// kept peer that is not connected is then redialed at once.
func (n *Host) noteAddrs(ai peer.AddrInfo, ttl time.Duration) {
	if ai.ID == n.h.ID() || len(ai.Addrs) == 0 {
		return
	}
	ps := n.h.Peerstore()
	known := ps.Addrs(ai.ID)
	fresh := false
	for _, a := range ai.Addrs {
		if !slices.ContainsFunc(known, a.Equal) {
			fresh = true
			break
		}
	}
	ps.AddAddrs(ai.ID, ai.Addrs, ttl)
	k := n.keep
	k.mu.Lock()
	defer k.mu.Unlock()
	kp := k.peers[ai.ID]
	if kp == nil || kp.dialing || n.connected(ai.ID) {
		return
	}
	now := time.Now()
	if fresh {
		kp.wait = keepBackoffMin
		kp.due = now
		k.poke()
		return
	}
	// The same addresses again: news that the peer is there now.
	if kp.hint(now) {
		k.hints++
		n.log.Debug("kept peer heard of: redialing soon", "peer", ai.ID)
		k.poke()
	}
}

// interfacesFingerprint describes the up interfaces and their addresses;
// it changes when a link goes down or up or an address comes or goes.
func interfacesFingerprint() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagRunning == 0 {
			continue
		}
		b.WriteString(i.Name)
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			b.WriteByte(' ')
			b.WriteString(a.String())
		}
		b.WriteByte('\n')
	}
	return b.String()
}
