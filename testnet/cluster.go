package testnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/node"
	"grove/node/api"
	"grove/p2p"
)

// Timing holds the protocol timers given to every node. Real deployments
// use seconds to minutes; a testnet shortens them so that joins, finality
// and tips happen in a fraction of a second.
type Timing struct {
	CommitDelta   time.Duration
	FinalityAge   time.Duration
	FinalityGrace time.Duration
	TipInterval   time.Duration
	PersistEvery  time.Duration
	Heartbeat     time.Duration // GossipSub heartbeat
}

// FastTiming is the default testnet timing. FinalityGrace is how late a
// message for a superseded epoch may still arrive and be read; at 100ms a
// loaded two-core machine lost such messages now and then (the demo showed
// it), so it is kept at half a second.
var FastTiming = Timing{
	CommitDelta:   20 * time.Millisecond,
	FinalityAge:   1500 * time.Millisecond,
	FinalityGrace: 500 * time.Millisecond,
	TipInterval:   200 * time.Millisecond,
	PersistEvery:  200 * time.Millisecond,
	Heartbeat:     100 * time.Millisecond,
}

// ClusterConfig configures a Cluster.
type ClusterConfig struct {
	// Dir holds every node's home; empty means a temporary directory that
	// Close removes.
	Dir string
	// Seed makes the topology and the scenario's choices reproducible.
	Seed uint64
	// Timing defaults to FastTiming.
	Timing Timing
	// Degree is how many running peers a starting node dials. Default 4.
	Degree int
	// Logger receives node diagnostics; default discards them.
	Logger *slog.Logger
	// Processes, if set, runs every node as a separate process driven
	// through its local API socket; nil runs them all in this process.
	Processes *Processes
}

// Peer is one node of the cluster.
type Peer struct {
	Name string
	Home string
	ID   peer.ID

	mu   sync.Mutex
	dev  api.Service // the running device; nil while stopped
	node *node.Node  // in-process mode
	host *p2p.Host   // in-process mode
	proc *nodeProc   // processes mode
	// addrs are the running node's /p2p multiaddrs (processes mode: what
	// a starting process dials).
	addrs []string
	// starts counts the starts, so that a caller can tell whether the
	// node was killed and restarted under it.
	starts  int
	peakMB  float64 // largest peak RSS of this peer's processes so far
	stopSub context.CancelFunc
	subDone chan struct{}
}

// Device returns the running node's local API (the node itself in one
// process, an API client of the node's process with --processes), nil
// while the peer is stopped.
func (p *Peer) Device() api.Service {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dev
}

// Running reports whether the peer's node is up.
func (p *Peer) Running() bool { return p.Device() != nil }

// incarnation returns the running device and its start count.
func (p *Peer) incarnation() (api.Service, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dev, p.starts
}

// Cluster is a set of real nodes on this machine.
type Cluster struct {
	cfg    ClusterConfig
	dir    string
	ownDir bool
	rng    *rand.Rand
	part   partition
	cuts   linkCuts
	rec    *recorder
	log    *slog.Logger

	lab *netLab // network-namespace mode only

	mu    sync.Mutex
	peers []*Peer
}

// NewCluster prepares an empty cluster.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Timing == (Timing{}) {
		cfg.Timing = FastTiming
	}
	if cfg.Degree <= 0 {
		cfg.Degree = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Cluster{cfg: cfg, dir: cfg.Dir, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		rec: newRecorder(), log: cfg.Logger}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "grove-testnet-")
		if err != nil {
			return nil, fmt.Errorf("testnet: temp dir: %w", err)
		}
		c.dir, c.ownDir = d, true
	} else if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("testnet: dir: %w", err)
	}
	if cfg.Processes != nil && cfg.Processes.Netns != nil {
		lab, err := newNetLab(*cfg.Processes.Netns)
		if err != nil {
			if c.ownDir {
				os.RemoveAll(c.dir)
			}
			return nil, err
		}
		c.lab = lab
	}
	return c, nil
}

// awaitDiscovery waits until every running node is connected to every
// other one: in network-namespace mode that is mDNS at work, since nobody
// was given an address.
func (c *Cluster) awaitDiscovery(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		up := c.Running()
		short := ""
		for _, p := range up {
			dev := p.Device()
			if dev == nil {
				continue
			}
			ps, err := dev.Peers(ctx)
			if err != nil || len(ps) < len(up)-1 {
				short = fmt.Sprintf("%s knows %d of %d peers (%v)", p.Name, len(ps), len(up)-1, err)
				break
			}
		}
		if short == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testnet: discovery: %s after %v", short, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Peers returns the cluster's peers in the order they were added.
func (c *Cluster) Peers() []*Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Peer(nil), c.peers...)
}

// Running returns the peers whose node is up.
func (c *Cluster) Running() []*Peer {
	var out []*Peer
	for _, p := range c.Peers() {
		if p.Running() {
			out = append(out, p)
		}
	}
	return out
}

// Add creates a new peer with the given name, starts it and connects it to
// up to Degree running peers.
func (c *Cluster) Add(ctx context.Context, name string) (*Peer, error) {
	p := &Peer{Name: name, Home: filepath.Join(c.dir, name)}
	if err := c.start(ctx, p); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.peers = append(c.peers, p)
	c.mu.Unlock()
	return p, nil
}

func (c *Cluster) start(ctx context.Context, p *Peer) error {
	if err := os.MkdirAll(p.Home, 0o700); err != nil {
		return fmt.Errorf("testnet: %s home: %w", p.Name, err)
	}
	if c.cfg.Processes != nil {
		return c.startProcess(ctx, p)
	}
	t := c.cfg.Timing
	logger := c.log.With("node", p.Name)
	gate := &linkGate{cuts: &c.cuts}
	h, err := p2p.New(p2p.Config{
		IdentityFile:      filepath.Join(p.Home, "peer.key"),
		Listen:            []string{"/ip4/127.0.0.1/tcp/0"},
		HeartbeatInterval: t.Heartbeat,
		// The testnet drives bursts far above a person's typing speed.
		PeerMessageRate: 1000, PeerMessageBurst: 5000,
		Logger:          logger,
		ConnectionGater: gate,
	})
	if err != nil {
		return fmt.Errorf("testnet: %s host: %w", p.Name, err)
	}
	gate.setSelf(h.ID())
	n, err := node.New(nodeConfig(p.Home, p.Name, &faultNet{Network: h, part: &c.part}, logger, t))
	if err == nil {
		err = n.Start(ctx)
	}
	if err != nil {
		h.Close()
		return fmt.Errorf("testnet: start %s: %w", p.Name, err)
	}
	if err := c.subscribe(p, n); err != nil {
		n.Close()
		h.Close()
		return err
	}
	p.mu.Lock()
	p.ID, p.dev, p.node, p.host = h.ID(), n, n, h
	p.starts++
	p.mu.Unlock()
	for _, q := range c.dialTargets(p) {
		qn := q.inProcessNode()
		if qn == nil {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := n.Connect(dctx, qn.AddrInfo()); err != nil {
			c.log.Warn("connect failed", "from", p.Name, "to", q.Name, "err", err)
		}
		cancel()
	}
	return nil
}

// nodeConfig is the node configuration of a testnet node, in this process
// or in a node process.
func nodeConfig(home, name string, net p2p.Network, logger *slog.Logger, t Timing) node.Config {
	return node.Config{
		Home: home, Name: name, Network: net, Logger: logger,
		CommitDelta: t.CommitDelta, FinalityAge: t.FinalityAge, FinalityGrace: t.FinalityGrace,
		TipInterval: t.TipInterval, PersistEvery: t.PersistEvery,
	}
}

// subscribe feeds dev's events to the recorder until the peer stops.
func (c *Cluster) subscribe(p *Peer, dev api.Service) error {
	subCtx, stop := context.WithCancel(context.Background())
	events, err := dev.Subscribe(subCtx)
	if err != nil {
		stop()
		return fmt.Errorf("testnet: subscribe %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.rec.consume(p.Name, events)
	}()
	p.mu.Lock()
	p.stopSub, p.subDone = stop, done
	p.mu.Unlock()
	return nil
}

func (p *Peer) inProcessNode() *node.Node {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.node
}

// dialTargets picks up to Degree random running peers for p to dial
// (always including the first peer, so the graph stays connected).
func (c *Cluster) dialTargets(p *Peer) []*Peer {
	var cands []*Peer
	for _, q := range c.Running() {
		if q != p {
			cands = append(cands, q)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	first := cands[0]
	rest := cands[1:]
	c.mu.Lock()
	c.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	c.mu.Unlock()
	targets := append([]*Peer{first}, rest...)
	if len(targets) > c.cfg.Degree {
		targets = targets[:c.cfg.Degree]
	}
	return targets
}

// Stop closes a peer's node (a clean shutdown: its store stays).
func (c *Cluster) Stop(p *Peer) error {
	p.mu.Lock()
	n, h, proc, stop, done := p.node, p.host, p.proc, p.stopSub, p.subDone
	running := p.dev != nil
	p.dev, p.node, p.host, p.proc = nil, nil, nil, nil
	p.mu.Unlock()
	if !running {
		return nil
	}
	var err error
	if proc != nil {
		p.notePeak(proc.peakRSSMB())
		err = proc.stop()
	} else {
		// The host goes first, as a daemon's own network does in
		// node.Close: peers then see a disconnect, not a topic leave whose
		// prune backoff would keep the restarted node out of their mesh.
		if h != nil {
			err = h.Close()
		}
		err = errors.Join(err, n.Close())
	}
	stop()
	<-done
	return err
}

// Kill ends a peer's node process with SIGKILL (processes mode only): no
// shutdown, whatever was not yet on disk is gone.
func (c *Cluster) Kill(p *Peer) error {
	p.mu.Lock()
	proc, stop, done := p.proc, p.stopSub, p.subDone
	if proc == nil {
		p.mu.Unlock()
		if c.cfg.Processes == nil {
			return ErrNeedsProcesses
		}
		return nil
	}
	p.dev, p.proc = nil, nil
	p.mu.Unlock()
	p.notePeak(proc.peakRSSMB())
	err := proc.kill()
	stop()
	<-done
	return err
}

func (p *Peer) notePeak(mb float64) {
	p.mu.Lock()
	p.peakMB = max(p.peakMB, mb)
	p.mu.Unlock()
}

// peakRSSMB is the run's peak memory: this process's in one process; in
// processes mode the sum over peers of each one's largest node process
// (this process only drives them, and its own peak may come from earlier
// work).
func (c *Cluster) peakRSSMB() float64 {
	if c.cfg.Processes == nil {
		return peakRSSMB()
	}
	var total float64
	for _, p := range c.Peers() {
		p.mu.Lock()
		proc := p.proc
		p.mu.Unlock()
		if proc != nil {
			p.notePeak(proc.peakRSSMB())
		}
		p.mu.Lock()
		total += p.peakMB
		p.mu.Unlock()
	}
	return total
}

// Restart starts a stopped peer again on its home directory.
func (c *Cluster) Restart(ctx context.Context, p *Peer) error {
	if p.Running() {
		return nil
	}
	return c.start(ctx, p)
}

// Partition splits the peers into sides: peers in different groups cannot
// exchange gossip or streams. Peers not listed reach everyone. In
// processes mode every running node process is told the new sides.
func (c *Cluster) Partition(sides ...[]*Peer) {
	m := make(map[peer.ID]int)
	for i, s := range sides {
		for _, p := range s {
			m[p.ID] = i + 1
		}
	}
	c.part.set(m)
	c.pushPartition()
}

// Heal removes the partition.
func (c *Cluster) Heal() {
	c.part.set(nil)
	c.pushPartition()
}

func (c *Cluster) pushPartition() {
	if c.cfg.Processes == nil {
		return
	}
	line := c.part.encode()
	for _, p := range c.Peers() {
		p.mu.Lock()
		proc := p.proc
		p.mu.Unlock()
		if proc != nil {
			if err := proc.control(line); err != nil {
				c.log.Warn("partition not delivered", "node", p.Name, "err", err)
			}
		}
	}
}

// Close stops every node and removes the temporary directory (and, in
// network-namespace mode, every namespace the cluster created).
func (c *Cluster) Close() error {
	var errs []error
	for _, p := range c.Peers() {
		errs = append(errs, c.Stop(p))
	}
	if c.lab != nil {
		errs = append(errs, c.lab.Close())
	}
	if c.ownDir {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// mode names how the nodes run, for the report.
func (c *Cluster) mode() string {
	switch {
	case c.lab != nil:
		return "netns"
	case c.cfg.Processes != nil:
		return "processes"
	}
	return "in-process"
}

// Dir is the directory holding the nodes' homes.
func (c *Cluster) Dir() string { return c.dir }

// groupOf returns a device's view of group id.
func groupOf(ctx context.Context, n api.Service, id string) (api.Group, error) {
	gs, err := n.Groups(ctx)
	if err != nil {
		return api.Group{}, err
	}
	for _, g := range gs {
		if g.ID == id {
			return g, nil
		}
	}
	return api.Group{}, fmt.Errorf("no group %s", id[:8])
}
