package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// eventBuffer is the capacity of the Events channel.
const eventBuffer = 256

// Host is the libp2p implementation of Network.
type Host struct {
	cfg Config
	log *slog.Logger
	h   host.Host
	ps  *pubsub.PubSub
	dht *dht.IpfsDHT // nil unless Config.EnableDHT
	rd  *drouting.RoutingDiscovery

	tracer *meshTracer
	keep   *keeper // KeepConnected state (keep.go)
	// mdnsKick (capacity 1) asks mdnsLoop to restart mDNS at once.
	mdnsKick chan struct{}

	ctx    context.Context // ends at Close; parent of every goroutine's context
	cancel context.CancelFunc
	// psCtx runs GossipSub. It ends after ctx, once the libp2p host is
	// closed and the topics are unwound (see Close).
	psCtx    context.Context
	psCancel context.CancelFunc
	wg       sync.WaitGroup // owned goroutines
	handlers sync.WaitGroup // inbound stream handlers (Serve)

	events chan PeerEvent
	// newPeer is signalled (never blocking) when identify completes for a
	// peer, so that savePeersLoop writes the peer file soon after (see
	// savePeersLoop).
	newPeer chan struct{}

	mu     sync.Mutex // guards the fields below
	closed bool
	topics map[string]*hostTopic // by topic name
	scores map[peer.ID]float64   // latest peer-score snapshot
	// probing holds the connections being checked by probeConn.
	probing map[network.Conn]struct{}

	staleClosed       atomic.Int64 // connections closed by probeConn
	writersRevived    atomic.Int64 // peers renewed by watchPubSubWriters
	mdnsRestarts      atomic.Int64 // by mdnsLoop
	staleProbeTimeout time.Duration

	// saveMu serialises peer-file writes, snapshot to rename, so the file
	// always holds the latest snapshot written (see savePeers).
	saveMu sync.Mutex
	// peersFinal is set (under saveMu) once Close has written the peer
	// file; later saves are skipped.
	peersFinal bool
	// afterPeerSnapshot, when set (tests only), runs in savePeers between
	// taking the snapshot and writing it.
	afterPeerSnapshot func()
}

var _ Network = (*Host)(nil)

// New starts a host. The caller must Close it.
func New(cfg Config) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	var key crypto.PrivKey
	var err error
	if cfg.IdentityFile != "" {
		key, err = LoadOrCreateSealedIdentity(cfg.IdentityFile, cfg.IdentityKey)
	} else {
		key, _, err = crypto.GenerateEd25519Key(nil)
	}
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	psCtx, psCancel := context.WithCancel(context.Background())
	n := &Host{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "p2p"),
		tracer:   newMeshTracer(),
		keep:     newKeeper(),
		mdnsKick: make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
		psCtx:    psCtx,
		psCancel: psCancel,
		events:   make(chan PeerEvent, eventBuffer),
		newPeer:  make(chan struct{}, 1),
		topics:   make(map[string]*hostTopic),
		scores:   make(map[peer.ID]float64),
		probing:  make(map[network.Conn]struct{}),

		staleProbeTimeout: staleConnProbeTimeout,
	}
	if err := n.start(key); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Host) start(key crypto.PrivKey) error {
	cfg := n.cfg
	rm, err := newResourceManager(cfg)
	if err != nil {
		return err
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLowWater, cfg.ConnHighWater, connmgr.WithGracePeriod(cfg.ConnGracePeriod))
	if err != nil {
		rm.Close()
		return fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		// TLS first, as go-libp2p's defaults order it: on TCP it uses
		// AES-GCM with hardware support and measured cheaper per message
		// than Noise's ChaCha20-Poly1305 (BenchmarkGossip); Noise stays
		// available for peers that prefer it.
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.EnableRelay(), // the client side: dial through relays
		libp2p.DisableMetrics(),
		// No libp2p.NATPortMap(): Grove never asks the router to open ports.
	}
	if cfg.ConnectionGater != nil {
		opts = append(opts, libp2p.ConnectionGater(cfg.ConnectionGater))
	}
	if cfg.EnableRelayService {
		opts = append(opts, libp2p.EnableRelayService())
	}
	if cfg.EnableHolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	forced := cfg.ForcePrivateReachability || cfg.ForcePublicReachability
	if cfg.EnableAutoNAT && !forced {
		// go-libp2p v0.51 never closes the AutoNAT service's dial-back swarm
		// when reachability is forced (the static AutoNAT does not own it),
		// leaking its goroutines; forced reachability therefore turns the
		// service off (see Config.EnableAutoNAT).
		opts = append(opts, libp2p.EnableNATService())
	}
	if cfg.ForcePrivateReachability {
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if cfg.ForcePublicReachability {
		opts = append(opts, libp2p.ForceReachabilityPublic())
	}
	if len(cfg.StaticRelays) > 0 {
		relays, err := parseAddrInfos(cfg.StaticRelays)
		if err != nil {
			return err
		}
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return fmt.Errorf("p2p: start libp2p: %w", err)
	}
	n.h = h
	n.watchStaleConns()

	// Subscribe to connectivity before anything can connect.
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtPeerIdentificationCompleted),
	})
	if err != nil {
		return fmt.Errorf("p2p: event bus: %w", err)
	}
	n.wg.Add(1)
	go n.forwardEvents(sub)

	if err := n.startPubSub(); err != nil {
		return err
	}
	n.goOwned(n.watchPubSubWriters)
	if err := n.startKeeper(); err != nil {
		return err
	}
	if err := n.startDiscovery(); err != nil {
		return err
	}
	n.startPeerstore()
	return nil
}

// newResourceManager sizes libp2p's resource manager for a device with
// cfg.MaxMemory bytes and cfg.MaxFileDescriptors descriptors to spare, not
// for a server.
func newResourceManager(cfg Config) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	scaled := limits.Scale(cfg.MaxMemory, cfg.MaxFileDescriptors)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(scaled))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	return rm, nil
}

func parseAddrInfos(ss []string) ([]peer.AddrInfo, error) {
	out := make([]peer.AddrInfo, 0, len(ss))
	for _, s := range ss {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: peer address %q: %w", s, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}

// forwardEvents turns libp2p connectedness events into PeerEvents and
// prompts a peer-file save when a peer's addresses become known.
func (n *Host) forwardEvents(sub event.Subscription) {
	defer n.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-n.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if _, ok := e.(event.EvtPeerIdentificationCompleted); ok {
				// The peer's listen addresses are known from here (and
				// again after each identify push, which reports a change):
				// save them. At the connect event an inbound peer has no
				// address yet, so saving then forgot every peer that had
				// dialed us (a joiner, for its inviter).
				select {
				case n.newPeer <- struct{}{}:
				default: // a save is already due
				}
				continue
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			var kind PeerEventKind
			switch ev.Connectedness {
			case network.Connected, network.Limited:
				kind = PeerConnected
			case network.NotConnected:
				kind = PeerDisconnected
			default:
				continue
			}
			select {
			case n.events <- PeerEvent{Peer: ev.Peer, Kind: kind, Time: time.Now()}:
			default:
				n.log.Warn("peer event dropped: consumer too slow", "peer", ev.Peer, "kind", kind)
			}
		}
	}
}

// ID returns this host's peer ID.
func (n *Host) ID() peer.ID { return n.h.ID() }

// AddrInfo returns the peer ID and listen addresses.
func (n *Host) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()}
}

// Libp2pHost exposes the underlying libp2p host for diagnostics and tests.
// Callers must not close it.
func (n *Host) Libp2pHost() host.Host { return n.h }

// Connect dials a peer and records its addresses for later restarts.
func (n *Host) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if n.isClosed() {
		return ErrClosed
	}
	err := n.h.Connect(ctx, ai)
	if err != nil && n.h.Network().Connectedness(ai.ID) != network.Connected {
		// Two hosts that dial each other at the same instant (a peer's
		// redialer against this call, after both restarted) can meet in a
		// TCP simultaneous open, which fails both security handshakes. One
		// retry after a random pause breaks the tie; the swarm's backoff
		// for the address that just failed would refuse it untried.
		select {
		case <-time.After(time.Duration(100+rand.IntN(300)) * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
		}
		if sw, ok := n.h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(ai.ID)
		}
		err = n.h.Connect(ctx, ai)
	}
	// The dial failed but the peer's own dial to us won: we are connected.
	if err != nil && n.h.Network().Connectedness(ai.ID) != network.Connected {
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
	}
	n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	return nil
}

// Peers lists connected peers.
func (n *Host) Peers() []peer.ID { return n.h.Network().Peers() }

// PeerAddrs lists the remote addresses of the open connections to p
// (what `grove peers` shows); empty when p is not connected.
func (n *Host) PeerAddrs(p peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, c := range n.h.Network().ConnsToPeer(p) {
		out = append(out, c.RemoteMultiaddr())
	}
	return out
}

// Events returns the peer event channel.
func (n *Host) Events() <-chan PeerEvent { return n.events }

func (n *Host) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// Close stops discovery, saves known peers, closes the libp2p host and
// waits for every goroutine this Host started.
//
// Close is a disconnect, not a leave: the host's connections are closed
// before its topics are unwound, so no PRUNE reaches the neighbours. A
// PRUNE asks them to back off (refuse our GRAFTs) for a while, and a
// device restarted within that time would find no mesh; a disconnect makes
// GossipSub drop us from its meshes with no backoff (go-libp2p-pubsub
// v0.19.0, GossipSubRouter.OnClosedOutboundStream), so a restarted device
// is grafted again at the next heartbeat. Leaving a group is
// Subscription.Close.
func (n *Host) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	topics := make([]*hostTopic, 0, len(n.topics))
	for _, t := range n.topics {
		topics = append(topics, t)
	}
	n.mu.Unlock()

	var errs []error
	if n.h != nil && n.cfg.PeerstoreFile != "" {
		if err := n.saveFinalPeers(); err != nil {
			errs = append(errs, err)
		}
	}
	n.cancel()
	if n.dht != nil {
		if err := n.dht.Close(); err != nil {
			errs = append(errs, fmt.Errorf("p2p: close dht: %w", err))
		}
	}
	if n.h != nil {
		if err := n.h.Close(); err != nil {
			errs = append(errs, fmt.Errorf("p2p: close host: %w", err))
		}
	}
	// With every connection closed (and no new one possible), unwinding a
	// topic through GossipSub, which still runs, sends nothing: its PRUNEs
	// go to dead streams. It ends pending Next calls with ErrClosed.
	for _, t := range topics {
		t.close()
	}
	n.psCancel()
	n.wg.Wait()
	n.handlers.Wait()
	close(n.events)
	return errors.Join(errs...)
}
