package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ErrNotConnected is returned by MemNode when a stream is opened to a peer it
// has no link to.
var ErrNotConnected = errors.New("p2p: not connected")

// MemNetwork is an in-memory network of MemNodes for fast, deterministic
// tests of the layers above p2p. Gossip floods along links, each hop running
// the receiving node's validation before delivering and forwarding, so a
// rejected message stops at the first hop exactly as with GossipSub. Streams
// are in-memory pipes whose Send blocks until the peer receives (capacity
// one frame), so back-pressure is as strict as it gets. Delivery is
// synchronous: Publish returns after every reachable node has validated the
// message.
type MemNetwork struct {
	mu    sync.Mutex
	nodes map[peer.ID]*MemNode
}

// NewMemNetwork returns an empty in-memory network.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{nodes: make(map[peer.ID]*MemNode)}
}

func (m *MemNetwork) node(p peer.ID) *MemNode {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nodes[p]
}

// MemNode is one member of a MemNetwork; it implements Network.
type MemNode struct {
	net *MemNetwork
	id  peer.ID
	cfg Config
	log *slog.Logger

	ctx      context.Context
	cancel   context.CancelFunc
	handlers sync.WaitGroup // inbound stream handlers
	events   chan PeerEvent

	mu     sync.Mutex // guards the fields below
	closed bool
	links  map[peer.ID]bool
	topics map[string]*memTopic
	serve  map[protocol.ID]StreamHandler
	seen   map[string]time.Time   // message ids, for duplicate suppression
	open   map[*memReset]struct{} // streams to reset on Close
	// kept and noneSince are the KeepConnected sets and when each last
	// had no linked peer.
	kept      map[string]map[peer.ID]struct{}
	noneSince map[string]time.Time
}

var _ Network = (*MemNode)(nil)

// seenTTL matches GossipSub's default seen-messages window.
const seenTTL = 2 * time.Minute

type memTopic struct {
	group GroupID
	check topicCheck
	ch    chan *Message
	done  chan struct{}
	once  sync.Once
}

// NewNode adds a node. Of cfg only the message, frame, stream, rate and
// buffer limits and Logger apply; Listen is ignored.
func (m *MemNetwork) NewNode(cfg Config) (*MemNode, error) {
	if err := cfg.validateRest(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("p2p: generate key: %w", err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("p2p: peer id: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &MemNode{
		net: m, id: id, cfg: cfg, log: cfg.Logger.With("component", "p2p-mem"),
		ctx: ctx, cancel: cancel,
		events: make(chan PeerEvent, eventBuffer),
		links:  make(map[peer.ID]bool),
		topics: make(map[string]*memTopic),
		serve:  make(map[protocol.ID]StreamHandler),
		seen:   make(map[string]time.Time),
		open:   make(map[*memReset]struct{}),
	}
	m.mu.Lock()
	m.nodes[id] = n
	m.mu.Unlock()
	return n, nil
}

func (n *MemNode) ID() peer.ID             { return n.id }
func (n *MemNode) AddrInfo() peer.AddrInfo { return peer.AddrInfo{ID: n.id} }
func (n *MemNode) Events() <-chan PeerEvent {
	return n.events
}

// emitLocked queues an event; n.mu must be held and n not closed, which
// keeps it from racing with Close closing the channel.
func (n *MemNode) emitLocked(p peer.ID, kind PeerEventKind) {
	select {
	case n.events <- PeerEvent{Peer: p, Kind: kind, Time: time.Now()}:
	default:
		n.log.Warn("peer event dropped: consumer too slow", "peer", p, "kind", kind)
	}
}

// Connect links two nodes (both directions).
func (n *MemNode) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if ai.ID == n.id {
		return fmt.Errorf("p2p: connect to self")
	}
	o := n.net.node(ai.ID)
	if o == nil {
		return fmt.Errorf("p2p: connect %s: no such node", ai.ID)
	}
	if !n.link(o.id) {
		return ErrClosed
	}
	if !o.link(n.id) {
		n.unlink(o.id)
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, ErrClosed)
	}
	return nil
}

// Disconnect removes the link to p in both directions, for partition tests.
func (n *MemNode) Disconnect(p peer.ID) {
	n.unlink(p)
	if o := n.net.node(p); o != nil {
		o.unlink(n.id)
	}
}

func (n *MemNode) link(p peer.ID) bool {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return false
	}
	if !n.links[p] {
		n.links[p] = true
		n.emitLocked(p, PeerConnected)
		n.keptChangedLocked()
	}
	n.mu.Unlock()
	return true
}

func (n *MemNode) unlink(p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.links[p] && !n.closed {
		delete(n.links, p)
		n.emitLocked(p, PeerDisconnected)
		n.keptChangedLocked()
	}
}

var _ Keeper = (*MemNode)(nil)

// KeepConnected implements Keeper. MemNode records the sets for
// KeepStatus but never redials: its links are cut only by tests, on
// purpose (partitions), and must stay cut until the test heals them.
func (n *MemNode) KeepConnected(set string, peers []peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.kept == nil {
		n.kept = make(map[string]map[peer.ID]struct{})
		n.noneSince = make(map[string]time.Time)
	}
	want := make(map[peer.ID]struct{}, len(peers))
	for _, p := range peers {
		if p != "" && p != n.id {
			want[p] = struct{}{}
		}
	}
	if len(want) == 0 {
		delete(n.kept, set)
		delete(n.noneSince, set)
		return
	}
	n.kept[set] = want
	n.keptChangedLocked()
}

// KeepStatus implements Keeper.
func (n *MemNode) KeepStatus(set string) KeepStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := KeepStatus{Wanted: len(n.kept[set])}
	for p := range n.kept[set] {
		if n.links[p] {
			s.Connected++
		}
	}
	if s.Connected == 0 && s.Wanted > 0 {
		s.NoneSince = n.noneSince[set]
	}
	return s
}

// keptChangedLocked updates each set's NoneSince after a link change.
func (n *MemNode) keptChangedLocked() {
	now := time.Now()
	for set, members := range n.kept {
		linked := false
		for p := range members {
			if n.links[p] {
				linked = true
				break
			}
		}
		if linked {
			delete(n.noneSince, set)
		} else if _, ok := n.noneSince[set]; !ok {
			n.noneSince[set] = now
		}
	}
}

func (n *MemNode) Peers() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]peer.ID, 0, len(n.links))
	for p := range n.links {
		out = append(out, p)
	}
	return out
}

func (n *MemNode) Subscribe(g GroupID, v Validator) (Subscription, error) {
	name := TopicName(g)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if _, ok := n.topics[name]; ok {
		return nil, ErrAlreadySubscribed
	}
	t := &memTopic{
		group: append(GroupID(nil), g...),
		check: newTopicCheck(n.cfg, v),
		ch:    make(chan *Message, n.cfg.SubscriptionBuffer),
		done:  make(chan struct{}),
	}
	n.topics[name] = t
	return &memSubscription{n: n, name: name, t: t}, nil
}

func (n *MemNode) Publish(ctx context.Context, g GroupID, data []byte) error {
	if len(data) > n.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d > %d bytes", ErrMessageTooLarge, len(data), n.cfg.MaxMessageSize)
	}
	name := TopicName(g)
	n.mu.Lock()
	t, ok := n.topics[name]
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !ok {
		return ErrNotSubscribed
	}
	data = append([]byte(nil), data...)
	id := MessageID(data)
	if r := t.check.run(ctx, n.id, data); r != Accept {
		return fmt.Errorf("p2p: publish: local validation: %v", r)
	}
	if !n.markSeen(id) {
		return nil // GossipSub also drops a payload it has already seen
	}
	n.deliver(t, &Message{Group: t.group, Data: data, ReceivedFrom: n.id, ID: id})
	n.forward(ctx, name, n.id, data, id)
	return nil
}

// markSeen records id and reports whether it was new.
func (n *MemNode) markSeen(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	if t, ok := n.seen[id]; ok && now.Sub(t) < seenTTL {
		return false
	}
	if len(n.seen) > 4096 {
		for k, t := range n.seen {
			if now.Sub(t) >= seenTTL {
				delete(n.seen, k)
			}
		}
	}
	n.seen[id] = now
	return true
}

func (n *MemNode) deliver(t *memTopic, m *Message) {
	select {
	case <-t.done:
	case t.ch <- m:
	default:
		n.log.Warn("message dropped: subscriber too slow", "group", fmt.Sprintf("%x", t.group))
	}
}

func (n *MemNode) forward(ctx context.Context, topic string, skip peer.ID, data []byte, id string) {
	for _, p := range n.Peers() {
		if p == skip {
			continue
		}
		if o := n.net.node(p); o != nil {
			o.receive(ctx, topic, n.id, data, id)
		}
	}
}

func (n *MemNode) receive(ctx context.Context, topic string, from peer.ID, data []byte, id string) {
	n.mu.Lock()
	t, ok := n.topics[topic]
	linked := n.links[from]
	closed := n.closed
	n.mu.Unlock()
	if !ok || !linked || closed || !n.markSeen(id) {
		return
	}
	if t.check.run(ctx, from, data) != Accept {
		return
	}
	n.deliver(t, &Message{Group: t.group, Data: data, ReceivedFrom: from, ID: id})
	n.forward(ctx, topic, from, data, id)
}

type memSubscription struct {
	n    *MemNode
	name string
	t    *memTopic
}

func (s *memSubscription) Next(ctx context.Context) (*Message, error) {
	select {
	case <-s.t.done:
		return nil, ErrClosed
	default:
	}
	select {
	case m := <-s.t.ch:
		return m, nil
	case <-s.t.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *memSubscription) Close() error {
	s.t.once.Do(func() {
		close(s.t.done)
		s.n.mu.Lock()
		if s.n.topics[s.name] == s.t {
			delete(s.n.topics, s.name)
		}
		s.n.mu.Unlock()
	})
	return nil
}

func (n *MemNode) Serve(proto protocol.ID, h StreamHandler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.serve[proto] = h
}

func (n *MemNode) OpenStream(ctx context.Context, p peer.ID, proto protocol.ID) (Stream, error) {
	n.mu.Lock()
	closed, linked := n.closed, n.links[p]
	n.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	o := n.net.node(p)
	if !linked || o == nil {
		return nil, fmt.Errorf("p2p: open %s to %s: %w", proto, p, ErrNotConnected)
	}
	o.mu.Lock()
	h, ok := o.serve[proto]
	if o.closed {
		o.mu.Unlock()
		return nil, fmt.Errorf("p2p: open %s to %s: %w", proto, p, ErrNotConnected)
	}
	if !ok {
		o.mu.Unlock()
		return nil, fmt.Errorf("p2p: open %s to %s: %w", proto, p, ErrNoHandler)
	}
	local, remote := newMemStreamPair(n.id, p, proto, n.cfg, o.cfg)
	o.handlers.Add(1)
	o.open[remote.reset] = struct{}{}
	o.mu.Unlock()
	n.mu.Lock()
	n.open[local.reset] = struct{}{}
	n.mu.Unlock()
	// Forget the stream on both nodes once it is reset (by either end or by
	// a Close) or the handler is done with it.
	forget := func() {
		n.mu.Lock()
		delete(n.open, local.reset)
		n.mu.Unlock()
		o.mu.Lock()
		delete(o.open, remote.reset)
		o.mu.Unlock()
	}
	go func() {
		defer o.handlers.Done()
		defer forget()
		defer remote.Close()
		h(o.ctx, remote)
	}()
	return local, nil
}

func (n *MemNode) Request(ctx context.Context, p peer.ID, proto protocol.ID, req []byte) ([]byte, error) {
	return request(ctx, n.cfg.StreamTimeout, proto, req, func(ctx context.Context) (Stream, error) {
		return n.OpenStream(ctx, p, proto)
	})
}

// Close unlinks the node from its peers, closes its subscriptions and waits
// for its stream handlers. Handlers see their context end; streams to and
// from this node are reset.
func (n *MemNode) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	peers := make([]peer.ID, 0, len(n.links))
	for p := range n.links {
		peers = append(peers, p)
	}
	n.links = map[peer.ID]bool{}
	topics := n.topics
	n.topics = map[string]*memTopic{}
	open := n.open
	n.open = map[*memReset]struct{}{}
	n.mu.Unlock()
	for r := range open {
		r.once.Do(func() { close(r.done) })
	}

	n.net.mu.Lock()
	delete(n.net.nodes, n.id)
	n.net.mu.Unlock()
	for _, p := range peers {
		if o := n.net.node(p); o != nil {
			o.unlink(n.id)
		}
	}
	for _, t := range topics {
		t.once.Do(func() { close(t.done) })
	}
	n.cancel()
	n.handlers.Wait()
	n.mu.Lock()
	close(n.events)
	n.mu.Unlock()
	return nil
}

// memStream is one end of an in-memory framed stream.
type memStream struct {
	local, remote peer.ID
	proto         protocol.ID
	maxFrame      int
	timeout       time.Duration

	in    <-chan []byte
	out   chan<- []byte
	reset *memReset

	mu        sync.Mutex
	outClosed bool
}

// memReset is shared by both ends; closing done aborts both.
type memReset struct {
	once sync.Once
	done chan struct{}
}

func newMemStreamPair(a, b peer.ID, proto protocol.ID, ca, cb Config) (*memStream, *memStream) {
	ab := make(chan []byte, 1)
	ba := make(chan []byte, 1)
	r := &memReset{done: make(chan struct{})}
	return &memStream{local: a, remote: b, proto: proto, maxFrame: ca.MaxFrameSize, timeout: ca.StreamTimeout, in: ba, out: ab, reset: r},
		&memStream{local: b, remote: a, proto: proto, maxFrame: cb.MaxFrameSize, timeout: cb.StreamTimeout, in: ab, out: ba, reset: r}
}

var _ Stream = (*memStream)(nil)

func (s *memStream) Send(frame []byte) error {
	if len(frame) > s.maxFrame {
		return fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, len(frame), s.maxFrame)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outClosed {
		return fmt.Errorf("p2p: send: %w", ErrClosed)
	}
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case <-s.reset.done:
		return fmt.Errorf("%w: send: stream reset", ErrRemote)
	default:
	}
	select {
	case s.out <- append([]byte(nil), frame...):
		return nil
	case <-s.reset.done:
		return fmt.Errorf("%w: send: stream reset", ErrRemote)
	case <-t.C:
		return fmt.Errorf("%w: send", ErrTimeout)
	}
}

func (s *memStream) Recv() ([]byte, error) {
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case f, ok := <-s.in:
		if !ok {
			return nil, io.EOF
		}
		if len(f) > s.maxFrame {
			s.Reset()
			return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, len(f), s.maxFrame)
		}
		return f, nil
	case <-s.reset.done:
		return nil, fmt.Errorf("%w: recv: stream reset", ErrRemote)
	case <-t.C:
		return nil, fmt.Errorf("%w: recv", ErrTimeout)
	}
}

func (s *memStream) CloseWrite() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.outClosed {
		s.outClosed = true
		close(s.out)
	}
	return nil
}

func (s *memStream) Close() error { return s.CloseWrite() }

func (s *memStream) Reset() error {
	s.reset.once.Do(func() { close(s.reset.done) })
	return nil
}

func (s *memStream) RemotePeer() peer.ID   { return s.remote }
func (s *memStream) Protocol() protocol.ID { return s.proto }
