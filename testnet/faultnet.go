package testnet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"grove/p2p"
)

// ErrPartitioned is returned for streams to a peer on the other side of an
// injected partition.
var ErrPartitioned = fmt.Errorf("testnet: peer is on the other side of a partition")

// partition assigns peers to sides; two peers on different non-zero sides
// cannot reach each other. Side 0 (the default) reaches everyone.
type partition struct {
	mu   sync.RWMutex
	side map[peer.ID]int
}

func (p *partition) set(sides map[peer.ID]int) {
	p.mu.Lock()
	p.side = sides
	p.mu.Unlock()
}

// encode is the partition as one control line for a node process:
// "partition PEER=SIDE ..." or "heal".
func (p *partition) encode() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.side) == 0 {
		return "heal"
	}
	var b strings.Builder
	b.WriteString("partition")
	for id, s := range p.side {
		fmt.Fprintf(&b, " %s=%d", id, s)
	}
	return b.String()
}

// ErrBadControl is returned for a control line a node process cannot parse.
var ErrBadControl = errors.New("testnet: bad control line")

// decodePartition parses encode's output.
func decodePartition(line string) (map[peer.ID]int, error) {
	f := strings.Fields(line)
	if len(f) == 1 && f[0] == "heal" {
		return nil, nil
	}
	if len(f) == 0 || f[0] != "partition" {
		return nil, fmt.Errorf("%w: %.40q", ErrBadControl, line)
	}
	m := make(map[peer.ID]int, len(f)-1)
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		id, err := peer.Decode(k)
		if !ok || err != nil {
			return nil, fmt.Errorf("%w: peer %.60q", ErrBadControl, k)
		}
		side, err := strconv.Atoi(v)
		if err != nil || side < 0 {
			return nil, fmt.Errorf("%w: side %.20q", ErrBadControl, v)
		}
		m[id] = side
	}
	return m, nil
}

func (p *partition) cut(a, b peer.ID) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	sa, sb := p.side[a], p.side[b]
	return sa != 0 && sb != 0 && sa != sb
}

// faultNet wraps a node's p2p.Network and applies the cluster's partition:
// gossip forwarded by a peer across the cut is ignored (so neither seen nor
// forwarded, as if the link were down) and streams across it fail.
type faultNet struct {
	p2p.Network
	part *partition
}

var _ p2p.Keeper = (*faultNet)(nil)

func (f *faultNet) Subscribe(g p2p.GroupID, v p2p.Validator) (p2p.Subscription, error) {
	self := f.Network.ID()
	return f.Network.Subscribe(g, func(ctx context.Context, from peer.ID, payload []byte) p2p.ValidationResult {
		if f.part.cut(self, from) {
			return p2p.Ignore
		}
		return v(ctx, from, payload)
	})
}

func (f *faultNet) Serve(proto protocol.ID, h p2p.StreamHandler) {
	self := f.Network.ID()
	f.Network.Serve(proto, func(ctx context.Context, s p2p.Stream) {
		if f.part.cut(self, s.RemotePeer()) {
			s.Reset()
			return
		}
		h(ctx, s)
	})
}

func (f *faultNet) OpenStream(ctx context.Context, p peer.ID, proto protocol.ID) (p2p.Stream, error) {
	if f.part.cut(f.Network.ID(), p) {
		return nil, ErrPartitioned
	}
	return f.Network.OpenStream(ctx, p, proto)
}

func (f *faultNet) Request(ctx context.Context, p peer.ID, proto protocol.ID, req []byte) ([]byte, error) {
	if f.part.cut(f.Network.ID(), p) {
		return nil, ErrPartitioned
	}
	return f.Network.Request(ctx, p, proto, req)
}

// The node finds the host's optional abilities by type assertion, which
// the embedded interface hides: each is forwarded here, so that a node on
// a faultNet keeps its members connected (p2p's keeper), learns addresses
// from tips and reports connections as it does on a bare host.

// KeepConnected forwards to the host's keeper.
func (f *faultNet) KeepConnected(set string, peers []peer.ID) {
	if k, ok := f.Network.(p2p.Keeper); ok {
		k.KeepConnected(set, peers)
	}
}

// KeepStatus forwards to the host's keeper.
func (f *faultNet) KeepStatus(set string) p2p.KeepStatus {
	if k, ok := f.Network.(p2p.Keeper); ok {
		return k.KeepStatus(set)
	}
	return p2p.KeepStatus{}
}

// AddPeerAddrs forwards addresses learned from tips.
func (f *faultNet) AddPeerAddrs(p peer.ID, addrs []ma.Multiaddr, ttl time.Duration) {
	if a, ok := f.Network.(interface {
		AddPeerAddrs(peer.ID, []ma.Multiaddr, time.Duration)
	}); ok {
		a.AddPeerAddrs(p, addrs, ttl)
	}
}

// PeerAddrs forwards the connections' addresses.
func (f *faultNet) PeerAddrs(p peer.ID) []ma.Multiaddr {
	if a, ok := f.Network.(interface{ PeerAddrs(peer.ID) []ma.Multiaddr }); ok {
		return a.PeerAddrs(p)
	}
	return nil
}

// PeerConns forwards the connections' details.
func (f *faultNet) PeerConns(p peer.ID) []p2p.ConnInfo {
	if a, ok := f.Network.(interface{ PeerConns(peer.ID) []p2p.ConnInfo }); ok {
		return a.PeerConns(p)
	}
	return nil
}

// MeshPeers forwards to the host so that node.Metrics still reports mesh
// sizes.
func (f *faultNet) MeshPeers(g p2p.GroupID) []peer.ID {
	if h, ok := f.Network.(interface{ MeshPeers(p2p.GroupID) []peer.ID }); ok {
		return h.MeshPeers(g)
	}
	return nil
}
