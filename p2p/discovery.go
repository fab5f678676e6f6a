package p2p

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

// dhtProtocolPrefix keeps Grove's DHT apart from the public IPFS DHT: peers
// speaking /ipfs/kad/1.0.0 never see our records, and we never join theirs.
const dhtProtocolPrefix = "/grove"

// dialParallelism bounds concurrent dials of remembered peers at start.
const dialParallelism = 8

// goOwned runs fn in a goroutine that Close waits for, unless the host is
// already closing. fn must return when n.ctx ends.
func (n *Host) goOwned(fn func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.goOwnedLocked(fn)
}

// goOwnedLocked is goOwned for callers holding n.mu.
func (n *Host) goOwnedLocked(fn func()) bool {
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		fn()
	}()
	return true
}

func (n *Host) startDiscovery() error {
	if n.cfg.EnableDHT {
		boot, err := parseAddrInfos(n.cfg.BootstrapPeers)
		if err != nil {
			return err
		}
		mode := dht.ModeAuto
		if n.cfg.DHTServer {
			mode = dht.ModeServer
		}
		// BootstrapPeers is always given, even empty, so the DHT never
		// falls back to a default list.
		d, err := dht.New(n.h,
			dht.ProtocolPrefix(dhtProtocolPrefix),
			dht.Mode(mode),
			dht.BootstrapPeers(boot...),
		)
		if err != nil {
			return fmt.Errorf("p2p: start dht: %w", err)
		}
		n.dht = d
		n.rd = drouting.NewRoutingDiscovery(d)
		for _, ai := range boot {
			n.dialAsync(ai)
		}
		if err := d.Bootstrap(n.ctx); err != nil {
			return fmt.Errorf("p2p: bootstrap dht: %w", err)
		}
	}
	if n.cfg.EnableMDNS {
		svc := mdns.NewMdnsService(n.h, n.cfg.MDNSServiceName, mdnsNotifee{n})
		if err := svc.Start(); err != nil {
			return fmt.Errorf("p2p: start mdns: %w", err)
		}
		if !n.goOwned(func() { n.mdnsLoop(svc) }) {
			svc.Close()
		}
	}
	return nil
}

// mdnsRefreshInterval is how often the mDNS service is restarted.
const mdnsRefreshInterval = time.Minute

// mdnsLoop owns the mDNS service and restarts it every mdnsRefreshInterval
// and when the network changes (refreshMDNS). go-libp2p's service
// announces once, with the addresses and on the interfaces of the moment
// it starts, and its queries back off to one a minute: a device whose
// address changed, or a link that came up later, stayed unannounced, and
// two devices that both missed each other's first packets (a link without
// carrier yet, a lost multicast) waited long for a query. A restart
// announces the current addresses on the current interfaces and queries
// at once.
func (n *Host) mdnsLoop(svc mdns.Service) {
	defer func() {
		if err := svc.Close(); err != nil {
			n.log.Debug("close mdns", "err", err)
		}
	}()
	t := time.NewTicker(mdnsRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.mdnsKick:
		}
		if err := svc.Close(); err != nil {
			n.log.Debug("close mdns", "err", err)
		}
		svc = mdns.NewMdnsService(n.h, n.cfg.MDNSServiceName, mdnsNotifee{n})
		if err := svc.Start(); err != nil {
			n.log.Warn("restart mdns", "err", err)
		}
		n.mdnsRestarts.Add(1)
	}
}

// refreshMDNS asks mdnsLoop, if it runs, to restart mDNS now.
func (n *Host) refreshMDNS() {
	select {
	case n.mdnsKick <- struct{}{}:
	default:
	}
}

type mdnsNotifee struct{ n *Host }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == m.n.h.ID() {
		return
	}
	m.n.log.Debug("mdns found peer", "peer", ai.ID)
	m.n.noteAddrs(ai, peerstore.TempAddrTTL)
	// Both hosts usually discover each other in the same instant; dialing
	// at once from ports bound with SO_REUSEPORT makes a TCP simultaneous
	// open, where both ends act as the security handshake's initiator and
	// it fails ("unexpected clientHello"). The greater peer ID waits, so
	// the smaller one's dial lands first; it still dials if nobody did.
	if m.n.h.ID() > ai.ID {
		m.n.goOwned(func() {
			select {
			case <-m.n.ctx.Done():
				return
			case <-time.After(mdnsDialDelay):
			}
			m.n.dialAsync(ai)
		})
		return
	}
	m.n.dialAsync(ai)
}

// mdnsDialDelay is how long the greater peer ID waits before dialing a peer
// found by mDNS: longer than a LAN handshake.
const mdnsDialDelay = 2 * time.Second

// dialAsync connects to ai in an owned goroutine unless already connected.
func (n *Host) dialAsync(ai peer.AddrInfo) {
	if ai.ID == n.h.ID() || n.h.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	n.goOwned(func() {
		ctx, cancel := context.WithTimeout(n.ctx, DefaultKnownPeerDialTimout)
		defer cancel()
		if err := n.Connect(ctx, ai); err != nil {
			n.log.Debug("dial failed", "peer", ai.ID, "err", err)
		}
	})
}

// startRendezvousLocked advertises this host under the group's rendezvous key and
// connects to the other members found there, every RendezvousInterval, until
// the returned function is called or the host closes. n.mu must be held.
func (n *Host) startRendezvousLocked(g GroupID) context.CancelFunc {
	if n.rd == nil {
		return func() {}
	}
	key := RendezvousKey(g)
	ctx, cancel := context.WithCancel(n.ctx)
	if !n.goOwnedLocked(func() { n.rendezvousLoop(ctx, key) }) {
		cancel()
	}
	return cancel
}

func (n *Host) rendezvousLoop(ctx context.Context, key string) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.rendezvousOnce(ctx, key)
		t.Reset(n.cfg.RendezvousInterval)
	}
}

func (n *Host) rendezvousOnce(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := n.rd.Advertise(ctx, key); err != nil {
		n.log.Debug("rendezvous advertise", "err", err)
	}
	found, err := n.rd.FindPeers(ctx, key)
	if err != nil {
		n.log.Debug("rendezvous find", "err", err)
		return
	}
	for ai := range found {
		if ai.ID == n.h.ID() || len(ai.Addrs) == 0 {
			continue
		}
		n.noteAddrs(ai, peerstore.TempAddrTTL)
		if n.h.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		if err := n.Connect(ctx, ai); err != nil {
			n.log.Debug("rendezvous dial", "peer", ai.ID, "err", err)
		}
	}
}

// ErrNoDHT is returned by FindGroupPeers when Config.EnableDHT is off.
var ErrNoDHT = errors.New("p2p: dht disabled")

// FindGroupPeers looks up the peers advertising the group's rendezvous key,
// without joining the group.
func (n *Host) FindGroupPeers(ctx context.Context, g GroupID) ([]peer.AddrInfo, error) {
	if n.rd == nil {
		return nil, ErrNoDHT
	}
	found, err := n.rd.FindPeers(ctx, RendezvousKey(g))
	if err != nil {
		return nil, fmt.Errorf("p2p: find group peers: %w", err)
	}
	var out []peer.AddrInfo
	for ai := range found {
		if ai.ID != n.h.ID() {
			out = append(out, ai)
		}
	}
	return out, nil
}

// The peer file records where known peers were last reachable, so that a
// restarted device can rejoin its groups without any discovery service.
type peerFile struct {
	Version int          `json:"version"`
	Peers   []peerRecord `json:"peers"`
}

type peerRecord struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

const (
	peerFileVersion = 1
	maxPeerFileSize = 4 << 20
	maxAddrsPerPeer = 16
)

// ErrCorruptPeerFile is logged (not returned) when the peer file cannot be
// parsed: losing remembered addresses is recoverable, so it must not stop the
// host from starting.
var ErrCorruptPeerFile = errors.New("p2p: corrupt peer file")

func (n *Host) startPeerstore() {
	if n.cfg.PeerstoreFile == "" {
		return
	}
	known, err := loadPeerFile(n.cfg.PeerstoreFile, n.cfg.MaxPersistedPeers)
	if err != nil {
		n.log.Warn("ignoring peer file", "path", n.cfg.PeerstoreFile, "err", err)
	}
	for _, ai := range known {
		if ai.ID == n.h.ID() {
			continue
		}
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	}
	if len(known) > 0 {
		n.goOwned(func() { n.dialKnown(known) })
	}
	n.goOwned(n.savePeersLoop)
}

func (n *Host) dialKnown(known []peer.AddrInfo) {
	sem := make(chan struct{}, dialParallelism)
	var wg sync.WaitGroup
	for _, ai := range known {
		if ai.ID == n.h.ID() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-n.ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(n.ctx, DefaultKnownPeerDialTimout)
			defer cancel()
			if err := n.h.Connect(ctx, ai); err != nil {
				n.log.Debug("known peer unreachable", "peer", ai.ID, "err", err)
			}
		}()
	}
	wg.Wait()
}

// minPeerSaveGap is the least time between two peer-file writes prompted
// by new connections (a burst of connections costs one or two writes).
const minPeerSaveGap = time.Second

// savePeersLoop rewrites the peer file every PeerstoreSaveInterval and soon
// after a peer is identified (connected, with its listen addresses known).
// Close writes it too, but a process killed without Close (SIGKILL, a
// crash, power loss) keeps only what was written before:
// with the periodic write alone, a device killed within minutes of meeting
// its only peers (say, right after joining a group) restarted knowing
// nobody, and what it still had to send (its replayed outbox) could reach
// no one until some peer happened to dial it.
func (n *Host) savePeersLoop() {
	t := time.NewTicker(n.cfg.PeerstoreSaveInterval)
	defer t.Stop()
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	defer soon.Stop()
	var last time.Time
	save := func() {
		last = time.Now()
		if err := n.savePeers(); err != nil {
			n.log.Warn("save peer file", "err", err)
		}
	}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			save()
		case <-n.newPeer:
			if wait := minPeerSaveGap - time.Since(last); wait > 0 {
				soon.Reset(wait)
				continue
			}
			save()
		case <-soon.C:
			save()
		}
	}
}

// savePeers writes connected peers first, then other known peers, up to
// MaxPersistedPeers; it does nothing once Close has written the file.
//
// Writes are serialised from snapshot to rename. Unserialised, a save
// begun by savePeersLoop (whose fsync can take long on a loaded machine)
// could rename its older snapshot over the one Close had just written: a
// host that met B, then C, and closed at once restarted knowing only B
// (TestRestartKeepsIdentityAndReconnects, about 1 run in 10 under load).
func (n *Host) savePeers() error {
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	if n.peersFinal {
		return nil
	}
	return n.writePeersLocked()
}

// saveFinalPeers is Close's save: it waits for a save in progress, writes
// the latest snapshot and stops every later save (one racing Close could
// otherwise snapshot a host whose connections Close is tearing down).
func (n *Host) saveFinalPeers() error {
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	n.peersFinal = true
	return n.writePeersLocked()
}

// writePeersLocked snapshots the known peers and writes the peer file.
// n.saveMu must be held.
func (n *Host) writePeersLocked() error {
	ps := n.h.Peerstore()
	self := n.h.ID()
	seen := make(map[peer.ID]bool)
	var order []peer.ID
	for _, p := range n.h.Network().Peers() {
		if !seen[p] {
			seen[p] = true
			order = append(order, p)
		}
	}
	for _, p := range ps.PeersWithAddrs() {
		if !seen[p] {
			seen[p] = true
			order = append(order, p)
		}
	}
	pf := peerFile{Version: peerFileVersion}
	for _, p := range order {
		if p == self || len(pf.Peers) >= n.cfg.MaxPersistedPeers {
			continue
		}
		addrs := ps.Addrs(p)
		if len(addrs) == 0 {
			continue
		}
		rec := peerRecord{ID: p.String()}
		for _, a := range addrs {
			if len(rec.Addrs) == maxAddrsPerPeer {
				break
			}
			rec.Addrs = append(rec.Addrs, a.String())
		}
		pf.Peers = append(pf.Peers, rec)
	}
	if n.afterPeerSnapshot != nil {
		n.afterPeerSnapshot()
	}
	data, err := json.Marshal(pf)
	if err != nil {
		return fmt.Errorf("p2p: encode peer file: %w", err)
	}
	if err := writeFileAtomic(n.cfg.PeerstoreFile, data, 0o600); err != nil {
		return fmt.Errorf("p2p: write peer file: %w", err)
	}
	return nil
}

// loadPeerFile reads the peer file. A missing file is no error. Malformed
// entries are skipped; a malformed file yields ErrCorruptPeerFile.
func loadPeerFile(path string, maxPeers int) ([]peer.AddrInfo, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("p2p: open peer file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPeerFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("p2p: read peer file: %w", err)
	}
	return parsePeerFile(data, maxPeers)
}

func parsePeerFile(data []byte, maxPeers int) ([]peer.AddrInfo, error) {
	if len(data) > maxPeerFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorruptPeerFile, maxPeerFileSize)
	}
	var pf peerFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptPeerFile, err)
	}
	if pf.Version != peerFileVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorruptPeerFile, pf.Version)
	}
	var out []peer.AddrInfo
	for _, rec := range pf.Peers {
		if len(out) >= maxPeers {
			break
		}
		id, err := peer.Decode(rec.ID)
		if err != nil {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		for i, s := range rec.Addrs {
			if i == maxAddrsPerPeer {
				break
			}
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				continue
			}
			ai.Addrs = append(ai.Addrs, a)
		}
		if len(ai.Addrs) > 0 {
			out = append(out, ai)
		}
	}
	return out, nil
}
