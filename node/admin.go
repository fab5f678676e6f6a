package node

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"grove/node/api"
	"grove/p2p"
)

// connectTimeout bounds Connect's dial: a peer that answers at all answers
// within seconds.
const connectTimeout = 20 * time.Second

// ConnectPeer implements api.Service: it dials a peer the user names by
// address, for networks where neither invite codes nor discovery find it
// (a peer behind a fixed port forward, a relay). The network remembers the
// address for later dials.
func (n *Node) ConnectPeer(ctx context.Context, addr string) (api.Peer, error) {
	m, err := ma.NewMultiaddr(strings.TrimSpace(addr))
	if err != nil {
		return api.Peer{}, api.Errorf(api.CodeInvalidArgument, "%q is not a multiaddr (want e.g. /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…)", addr)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return api.Peer{}, api.Errorf(api.CodeInvalidArgument, "address %s does not end in /p2p/PEER_ID (grove status on the other device lists its full addresses)", m)
	}
	if ai.ID == n.net.ID() {
		return api.Peer{}, api.Errorf(api.CodeInvalidArgument, "that is this device's own address")
	}
	dctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := n.net.Connect(dctx, *ai); err != nil {
		if ctx.Err() != nil {
			return api.Peer{}, ctx.Err()
		}
		n.log.Info("connect failed", "addr", m, "err", err)
		return api.Peer{}, api.Errorf(api.CodeUnavailable, "could not connect to %s: %s", m, dialProblem(err))
	}
	ps, err := n.Peers(ctx)
	if err != nil {
		return api.Peer{}, err
	}
	for _, p := range ps {
		if p.ID == ai.ID.String() {
			return p, nil
		}
	}
	// Connected and gone again already: say what was asked for.
	return api.Peer{ID: ai.ID.String(), Addrs: []string{m.String()}}, nil
}

// dialProblem says in a few words why a dial failed; the libp2p error
// lists every address tried with its transport's error.
func dialProblem(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is a grove daemon listening there?)"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within " + connectTimeout.String()
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to that address"
	case strings.Contains(err.Error(), "peer id mismatch"):
		return "a different device answers at that address (the peer id does not match)"
	}
	return "the connection failed (run the daemon with GROVE_LOG=debug for details)"
}

// peerConns describes the open connections to id when the network knows
// them (the libp2p host does; the in-memory network has no addresses).
func (n *Node) peerConns(id peer.ID) []api.Conn {
	h, ok := n.net.(interface{ PeerConns(peer.ID) []p2p.ConnInfo })
	if !ok {
		return nil
	}
	var out []api.Conn
	for _, c := range h.PeerConns(id) {
		dir := "outbound"
		if c.Inbound {
			dir = "inbound"
		}
		out = append(out, api.Conn{Addr: c.Addr.String(), Direction: dir, Transport: c.Transport, Opened: c.Opened})
	}
	return out
}
