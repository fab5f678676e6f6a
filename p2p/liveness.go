package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"
)

// staleConnProbeTimeout bounds the check of an older connection to a peer
// that has just connected again (Host.staleProbeTimeout; tests shorten
// it). A dead connection never answers, and until the probe gives up,
// GossipSub keeps writing into it whatever we publish to that peer (after
// a link cut, every message of those seconds is lost to it until a sync).
// A live one answers in two round trips (multistream negotiation, then the
// ping; the stream open itself costs none on yamux or QUIC), so 2 s leaves
// room for round trips of up to a second (a congested mobile or satellite
// link). Misjudging a live but slow connection costs little: it is the
// older of two, the peer stays connected on the newer one and GossipSub
// reopens its stream there. (It was 5 s.)
const staleConnProbeTimeout = 2 * time.Second

// A peer that crashes (or whose laptop sleeps, or whose network changes)
// closes nothing: we keep its connection, and GossipSub keeps writing to
// the stream on it, until the transport notices. For TCP the kernel of a
// crashed process resets the connection at once, but a QUIC connection
// only ends after its idle timeout (30 s), unless the peer returns on the
// same UDP port and answers with a stateless reset. Meanwhile the restarted
// peer dials us again on a new connection, but every message we publish or
// forward to it goes down the dead one and is lost.
//
// So when a peer connects while we still hold an older connection to it,
// the older one is probed (a ping on a stream opened on that connection)
// and closed if it does not answer in staleConnProbeTimeout. GossipSub then
// opens its stream on the live connection. A duplicate that is alive (both
// sides dialed at once) answers and stays.
func (n *Host) watchStaleConns() {
	n.h.Network().Notify(&network.NotifyBundle{ConnectedF: n.onConnected})
}

func (n *Host) onConnected(nw network.Network, c network.Conn) {
	for _, old := range nw.ConnsToPeer(c.RemotePeer()) {
		if old == c || !old.Stat().Opened.Before(c.Stat().Opened) {
			continue
		}
		n.mu.Lock()
		if _, busy := n.probing[old]; busy || n.closed {
			n.mu.Unlock()
			continue
		}
		n.probing[old] = struct{}{}
		n.goOwnedLocked(func() { n.probeConn(old) })
		n.mu.Unlock()
	}
}

// probeConn closes c if it does not answer a ping in time. Any answer,
// even a stream reset (the peer's resource limits), proves the connection
// alive, and a stream this host cannot open (its own limits) proves
// nothing: only silence until the deadline closes it.
func (n *Host) probeConn(c network.Conn) {
	defer func() {
		n.mu.Lock()
		delete(n.probing, c)
		n.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(n.ctx, n.staleProbeTimeout)
	defer cancel()
	err := pingConn(ctx, c)
	if err == nil || n.ctx.Err() != nil || c.IsClosed() {
		return
	}
	if !errors.Is(err, errNoAnswer) {
		n.log.Debug("connection probe inconclusive", "peer", c.RemotePeer(), "err", err)
		return
	}
	n.log.Debug("closing a stale connection: the peer connected again and this one does not answer",
		"peer", c.RemotePeer(), "remote", c.RemoteMultiaddr())
	c.Close()
	n.staleClosed.Add(1)
}

// errNoAnswer is pingConn's error when the peer did not answer before the
// context's deadline.
var errNoAnswer = errors.New("p2p: no answer on the connection")

// pingConn runs one libp2p ping (/ipfs/ping/1.0.0, which every libp2p
// host answers) on a new stream of c, not on whichever connection the
// host would choose. It wraps errNoAnswer when ctx's deadline passed
// without an answer.
func pingConn(ctx context.Context, c network.Conn) (err error) {
	// A relayed (limited) connection is probed too: a ping is a few bytes.
	s, err := c.NewStream(network.WithAllowLimitedConn(ctx, "grove liveness probe"))
	if err != nil {
		return fmt.Errorf("p2p: open probe stream: %w", err)
	}
	defer s.Reset()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	defer func() {
		var ne net.Error
		if err != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) ||
			errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())) {
			err = fmt.Errorf("%w: %w", errNoAnswer, err)
		}
	}()
	if err := msmux.SelectProtoOrFail(ping.ID, s); err != nil {
		return fmt.Errorf("p2p: negotiate ping: %w", err)
	}
	if err := s.SetProtocol(ping.ID); err != nil {
		return fmt.Errorf("p2p: ping protocol: %w", err)
	}
	want := make([]byte, ping.PingSize)
	rand.Read(want)
	if _, err := s.Write(want); err != nil {
		return fmt.Errorf("p2p: write ping: %w", err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(s, got); err != nil {
		return fmt.Errorf("p2p: read ping: %w", err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("p2p: ping answered with other bytes")
	}
	return nil
}

// pubsubWriterCheck is how often watchPubSubWriters looks for connected
// GossipSub peers that GossipSub no longer writes to, and pubsubWriterGrace
// how long such a peer may stay so (longer than GossipSub's own respawn
// delays, 0.1 to 0.8 s) before the connection to it is renewed.
const (
	pubsubWriterCheck = time.Second
	pubsubWriterGrace = 2 * time.Second
)

// gossipProtocols are the GossipSub versions a peer may announce.
var gossipProtocols = []protocol.ID{pubsub.GossipSubID_v13, pubsub.GossipSubID_v12, pubsub.GossipSubID_v11, pubsub.GossipSubID_v10}

// watchPubSubWriters revives GossipSub's link to a connected peer that
// GossipSub gave up writing to.
//
// When a peer's stream dies while the peer is still connected (its older
// connection closed after it connected again: every restart after a crash,
// see probeConn), GossipSub opens a new stream after a backoff, but only 4
// times per peer in 10 minutes (go-libp2p-pubsub v0.19.0,
// PubSub.handleDeadPeers and MaxBackoffAttempts). After that it forgets the
// peer's subscriptions and never writes to it again while it stays
// connected: no hello, so the peer never learns our topics and never
// GRAFTs us, and we never GRAFT it. A device restarted a fifth time within
// 10 minutes lost its mesh links for good (TestRepeatedRestartsRegainMesh).
// GossipSub does start a writer for a connected peer it has none for when a
// connection to that peer opens, so the connections are closed and the
// peer dialed again.
func (n *Host) watchPubSubWriters() {
	t := time.NewTicker(pubsubWriterCheck)
	defer t.Stop()
	missingSince := make(map[peer.ID]time.Time)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		writing := make(map[peer.ID]bool)
		for _, p := range n.ps.ListPeers("") {
			writing[p] = true
		}
		now := time.Now()
		seen := make(map[peer.ID]bool)
		for _, p := range n.h.Network().Peers() {
			if writing[p] || n.h.Network().Connectedness(p) != network.Connected {
				continue
			}
			if ok, err := n.h.Peerstore().SupportsProtocols(p, gossipProtocols...); err != nil || len(ok) == 0 {
				continue // not a GossipSub peer (or not identified yet)
			}
			seen[p] = true
			since, ok := missingSince[p]
			if !ok {
				missingSince[p] = now
				continue
			}
			if now.Sub(since) < pubsubWriterGrace {
				continue
			}
			delete(missingSince, p)
			n.renewConns(p)
		}
		for p := range missingSince {
			if !seen[p] {
				delete(missingSince, p)
			}
		}
	}
}

// renewConns closes every connection to p and dials it again, so that
// GossipSub starts a fresh writer for it.
func (n *Host) renewConns(p peer.ID) {
	n.log.Debug("gossipsub stopped writing to a connected peer; renewing its connection", "peer", p)
	if err := n.h.Network().ClosePeer(p); err != nil {
		n.log.Debug("close peer", "peer", p, "err", err)
	}
	n.writersRevived.Add(1)
	ctx, cancel := context.WithTimeout(n.ctx, DefaultKnownPeerDialTimout)
	defer cancel()
	if err := n.h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
		n.log.Debug("redial after renewing connection", "peer", p, "err", err)
	}
}
