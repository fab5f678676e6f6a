package node

import (
	"net"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"grove/p2p"
)

// Addresses in tips. A member that joined through an inviter learned only
// the inviter's address (from the invite code); without mDNS or a DHT it
// never learned any other member's, so it reached the others only
// through the inviter, and not at all while the inviter was offline, and
// the network's redial loop (reach.go, keepConnected) had nothing to dial.
// So every tip carries the sender's addresses (wire.go, tip version 2),
// signed with the rest of the tip, and a member that verifies a tip hands
// them to the network for the peer id in the sender's credential, which
// dials it if it is not connected.

// tipAddrTTL is how long addresses learned from a tip stay in the
// peerstore. A member's tips renew them every TipInterval while it is
// online; after it goes offline they are still worth trying for a day
// (its device often comes back on the same address).
const tipAddrTTL = 24 * time.Hour

// peerAddrAdder is implemented by networks that dial peers from learned
// addresses (p2p.Host); MemNetwork needs no addresses and does not.
type peerAddrAdder interface {
	AddPeerAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration)
}

// A drift in p2p's signature would silently stop tips' addresses from
// reaching the dialer.
var _ peerAddrAdder = (*p2p.Host)(nil)

// addrClass orders the addresses a tip carries: the ones most likely to
// work from elsewhere first.
type addrClass int

const (
	addrPublic   addrClass = iota // a routable IP, or a DNS name
	addrPrivate                   // RFC 1918 / RFC 4193: the same LAN
	addrRelayed                   // through a relay (/p2p-circuit)
	addrLoopback                  // this machine only
	addrUseless                   // unspecified, link-local, too long, not IP or DNS
)

func classifyAddr(a ma.Multiaddr) addrClass {
	if len(a) == 0 || len(a.Bytes()) > maxAddrLen {
		return addrUseless
	}
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return addrRelayed
		}
	}
	switch a[0].Code() {
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6, ma.P_DNSADDR:
		return addrPublic
	case ma.P_IP4, ma.P_IP6:
	default:
		return addrUseless // an IPv6 zone (link-local), unix sockets, ...
	}
	ip := net.IP(a[0].RawValue())
	switch {
	case ip.IsLoopback():
		return addrLoopback
	case ip.IsUnspecified(), ip.IsLinkLocalUnicast(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return addrUseless
	case ip.IsPrivate():
		return addrPrivate
	}
	return addrPublic
}

// advertisedAddrs picks what this device's tips carry from the addresses
// the host listens on and has observed as its own (p2p.Host.AddrInfo):
// public, then private, then relayed ones, at most maxTipAddrs; loopback
// only if the host has nothing else (a test on 127.0.0.1).
func advertisedAddrs(own []ma.Multiaddr) [][]byte {
	type ranked struct {
		class addrClass
		b     []byte
	}
	var rs []ranked
	for _, a := range own {
		if t, id := peer.SplitAddr(a); id != "" {
			a = t // a trailing /p2p/<self>
		}
		c := classifyAddr(a)
		if c == addrUseless {
			continue
		}
		b := a.Bytes()
		if !slices.ContainsFunc(rs, func(r ranked) bool { return string(r.b) == string(b) }) {
			rs = append(rs, ranked{c, b})
		}
	}
	slices.SortStableFunc(rs, func(x, y ranked) int { return int(x.class) - int(y.class) })
	var out [][]byte
	for _, r := range rs {
		if len(out) == maxTipAddrs || (r.class == addrLoopback && len(out) > 0) {
			break
		}
		out = append(out, r.b)
	}
	return out
}

// tipAddrsFor parses the addresses of a verified tip from the member with
// peer id p: malformed ones, ones naming another peer, and unusable ones
// are skipped (the tip itself still counts).
func tipAddrsFor(p peer.ID, raw [][]byte) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, b := range raw {
		if len(b) == 0 || len(b) > maxAddrLen {
			continue
		}
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			continue
		}
		t, id := peer.SplitAddr(a)
		if id != "" && id != p {
			continue // another peer's address: not the sender's to give
		}
		if t == nil || classifyAddr(t) == addrUseless {
			continue
		}
		if len(out) < maxTipAddrs {
			out = append(out, t)
		}
	}
	return out
}

// learnTipAddrs hands the addresses of a verified tip to the network for
// the member's peer id (from its credential), so that the dialer can
// reach it without going through whoever relayed the tip.
func (a *groupActor) learnTipAddrs(p peer.ID, raw [][]byte) {
	adder, ok := a.n.net.(peerAddrAdder)
	if !ok || p == "" || p == a.n.net.ID() || len(raw) == 0 {
		return
	}
	if addrs := tipAddrsFor(p, raw); len(addrs) > 0 {
		adder.AddPeerAddrs(p, addrs, tipAddrTTL)
	}
}

// tipAddrs is what this device's next tip carries (none on a network
// without addresses, such as MemNetwork).
func (n *Node) tipAddrs() [][]byte {
	return advertisedAddrs(n.net.AddrInfo().Addrs)
}
