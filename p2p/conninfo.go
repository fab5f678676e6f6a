package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ConnInfo describes one open connection to a peer, for people diagnosing
// connectivity (`grove peers`): who dialled whom, over what, since when.
type ConnInfo struct {
	Addr      ma.Multiaddr // the remote address
	Inbound   bool         // the peer dialled this host
	Transport string       // "tcp", "quic", "relay", ... from Addr
	Opened    time.Time
}

// PeerConns lists the open connections to p; empty when p is not connected.
func (n *Host) PeerConns(p peer.ID) []ConnInfo {
	var out []ConnInfo
	for _, c := range n.h.Network().ConnsToPeer(p) {
		st := c.Stat()
		out = append(out, ConnInfo{
			Addr:      c.RemoteMultiaddr(),
			Inbound:   st.Direction == network.DirInbound,
			Transport: TransportOf(c.RemoteMultiaddr()),
			Opened:    st.Opened,
		})
	}
	return out
}

// TransportOf names the transport of a multiaddr as a person would: a
// relayed address is "relay" whatever carries it, else the outermost
// transport protocol ("quic" for QUIC v1).
func TransportOf(a ma.Multiaddr) string {
	if a == nil {
		return ""
	}
	name := ""
	for _, c := range a {
		switch p := c.Protocol().Code; p {
		case ma.P_CIRCUIT:
			return "relay"
		case ma.P_TCP, ma.P_UDP:
			name = c.Protocol().Name
		case ma.P_QUIC_V1, ma.P_QUIC:
			name = "quic"
		case ma.P_WEBTRANSPORT:
			name = "webtransport"
		case ma.P_WEBRTC_DIRECT, ma.P_WEBRTC:
			name = "webrtc"
		case ma.P_WS, ma.P_WSS:
			name = c.Protocol().Name
		}
	}
	return name
}
