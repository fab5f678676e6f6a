package testnet

import (
	"context"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

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

// MeshPeers forwards to the host so that node.Metrics still reports mesh
// sizes.
func (f *faultNet) MeshPeers(g p2p.GroupID) []peer.ID {
	if h, ok := f.Network.(interface{ MeshPeers(p2p.GroupID) []peer.ID }); ok {
		return h.MeshPeers(g)
	}
	return nil
}
