package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Peer-score thresholds (gossipsub v1.1). A peer that keeps sending invalid
// payloads goes below zero (pruned from the mesh at the next heartbeat), then
// below GossipThreshold (no gossip exchanged), PublishThreshold (our own
// messages are not sent to it) and GraylistThreshold (its RPCs are ignored).
var scoreThresholds = pubsub.PeerScoreThresholds{
	GossipThreshold:             -10,
	PublishThreshold:            -50,
	GraylistThreshold:           -80,
	AcceptPXThreshold:           10,
	OpportunisticGraftThreshold: 3,
}

// peerScoreParams are the router-wide scoring parameters. IP colocation is
// not penalised: a family's phones behind one home NAT share an address, as
// do all test hosts on loopback.
func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		SkipAtomicValidation:      true,
		Topics:                    map[string]*pubsub.TopicScoreParams{},
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     0.9,
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
	}
}

// topicScoreParams reward time in the mesh and first deliveries a little and
// punish invalid messages (P4, which grows with the square of the count). A
// payload the validator rejects, including one over the size limit or over
// the forwarding peer's rate limit, counts as invalid against the peer that
// sent it to us. Mesh-delivery deficits (P3) are not scored: group topics
// are quiet most of the time, and P3 would punish honest peers for silence.
func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  100,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    0.5,
		FirstMessageDeliveriesCap:      10,
		InvalidMessageDeliveriesWeight: -10,
		InvalidMessageDeliveriesDecay:  0.99,
	}
}

// GossipSub backoffs. A PRUNE carries a backoff during which the pruned
// peer must not GRAFT us again; a GRAFT that comes anyway is refused, costs
// a behaviour penalty and restarts the backoff at pruneBackoff on both
// sides. Expired backoffs are only swept every 15 heartbeats, plus 2 s of
// slack (go-libp2p-pubsub v0.19.0, clearBackoff), before the heartbeat
// grafts that peer again. The library defaults (a minute after a prune, 10 s
// after an unsubscribe) are made for large public meshes; in a group of a
// few devices that stop and start all the time they leave a device that
// rejoins soon after leaving without a mesh for over a minute.
const (
	// unsubscribeBackoff is what we ask of our mesh peers when we leave a
	// topic (Subscription.Close). The wire carries whole seconds, and 0
	// would mean "use your pruneBackoff", so 1 s is the shortest.
	unsubscribeBackoff = time.Second
	// pruneBackoff is what we ask of a peer we prune: one over the mesh's
	// upper bound (Dhi), one with a negative score (whose GRAFTs the score
	// refuses anyway) or one that GRAFTed during a backoff.
	pruneBackoff = 5 * time.Second
	// graftFloodThreshold: a GRAFT this soon after a PRUNE costs an extra
	// penalty. A restarted device grafts once; a flooder, every heartbeat.
	graftFloodThreshold = 2 * time.Second
)

// gossipWindow is the minimum age of messages still advertised in IHAVE.
const gossipWindow = 3 * time.Second

// peerOutboundQueue is the number of RPCs queued per peer before GossipSub
// drops (default 32).
const peerOutboundQueue = 4096

func (n *Host) startPubSub() error {
	gsp := pubsub.DefaultGossipSubParams()
	gsp.HeartbeatInterval = n.cfg.HeartbeatInterval
	gsp.UnsubscribeBackoff = unsubscribeBackoff
	gsp.PruneBackoff = pruneBackoff
	gsp.GraftFloodThreshold = graftFloodThreshold
	if gsp.HeartbeatInitialDelay > n.cfg.HeartbeatInterval {
		gsp.HeartbeatInitialDelay = n.cfg.HeartbeatInterval
	}
	// The message cache is counted in heartbeats. Keep at least gossipWindow
	// of history for IWANT repair whatever the heartbeat, so a message lost
	// to a full peer queue during a burst is still recovered.
	if w := int((gossipWindow + n.cfg.HeartbeatInterval - 1) / n.cfg.HeartbeatInterval); w > gsp.HistoryGossip {
		gsp.HistoryGossip = w
		gsp.HistoryLength = w + 2
	}
	rpcMax := max(1<<20, 2*n.cfg.MaxMessageSize)
	ps, err := pubsub.NewGossipSub(n.psCtx, n.h,
		pubsub.WithGossipSubParams(gsp),
		// No libp2p message signing, author or sequence number: every
		// payload on a group topic authenticates itself (MLS messages are
		// signed by the sender's leaf key, tips by the member's MLS key, and
		// the node verifies both), so a libp2p signature would only cost a
		// second Ed25519 verification per message and tell every outsider
		// on the topic which device wrote each ciphertext. The message id is
		// the payload's hash, so identical payloads are one message.
		// StrictNoSign also drops (and scores against the sender) any
		// message that carries a signature, author, seqno or key: a
		// pre-version-2 peer, which never reaches us since topic names are
		// versioned (TopicName).
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return MessageID(m.Data) }),
		pubsub.WithMaxMessageSize(rpcMax),
		pubsub.WithPeerScore(peerScoreParams(), &scoreThresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.recordScores), n.cfg.HeartbeatInterval),
		pubsub.WithRawTracer(n.tracer),
		pubsub.WithLogger(n.log.With("component", "gossipsub")),
		// Bursts (a resync, a flurry of commits) should queue, not drop: in
		// a small group every neighbour is in the mesh, so there is nobody
		// to gossip IHAVE to and a dropped RPC is never repaired. Queued
		// RPCs share their message bodies, so the cost is mostly pointers.
		pubsub.WithPeerOutboundQueueSize(peerOutboundQueue),
		pubsub.WithValidateQueueSize(1024),
	)
	if err != nil {
		return fmt.Errorf("p2p: start gossipsub: %w", err)
	}
	n.ps = ps
	return nil
}

func (n *Host) recordScores(m map[peer.ID]float64) {
	n.mu.Lock()
	n.scores = m
	n.mu.Unlock()
}

// PeerScore returns the latest GossipSub score of p (sampled every
// heartbeat) and whether p was scored.
func (n *Host) PeerScore(p peer.ID) (float64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.scores[p]
	return s, ok
}

// MeshPeers returns the peers in this host's GossipSub mesh for the group.
func (n *Host) MeshPeers(g GroupID) []peer.ID {
	var out []peer.ID
	for _, p := range n.tracer.mesh(TopicName(g)) {
		if n.h.Network().Connectedness(p) == network.Connected {
			out = append(out, p)
		}
	}
	return out
}

// hostTopic is a joined group topic.
type hostTopic struct {
	n       *Host
	group   GroupID
	name    string
	topic   *pubsub.Topic
	sub     *pubsub.Subscription
	check   topicCheck
	stopRdv context.CancelFunc // stops rendezvous for this group

	once   sync.Once
	closed atomic.Bool
}

// Subscribe joins the group's topic.
func (n *Host) Subscribe(g GroupID, v Validator) (Subscription, error) {
	name := TopicName(g)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if _, ok := n.topics[name]; ok {
		return nil, ErrAlreadySubscribed
	}
	t := &hostTopic{
		n:     n,
		group: append(GroupID(nil), g...),
		name:  name,
		check: newTopicCheck(n.cfg, v),
	}
	if err := n.ps.RegisterTopicValidator(name, t.validate, pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("p2p: register validator: %w", err)
	}
	topic, err := n.ps.Join(name)
	if err != nil {
		n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("p2p: join topic: %w", err)
	}
	if err := topic.SetScoreParams(topicScoreParams()); err != nil {
		topic.Close()
		n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("p2p: topic score params: %w", err)
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(n.cfg.SubscriptionBuffer))
	if err != nil {
		topic.Close()
		n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("p2p: subscribe: %w", err)
	}
	t.topic, t.sub = topic, sub
	t.stopRdv = n.startRendezvousLocked(g)
	n.topics[name] = t
	return &hostSubscription{t: t}, nil
}

// validate runs on every message for the topic, including our own (from is
// then this host), before it is delivered or forwarded: size first (cheap),
// then the forwarding peer's rate, then the node's validator. Messages
// carry no author (see startPubSub), so the neighbour that sent it is the
// only peer the network layer can hold to account; GossipSub's scoring
// charges invalid messages to it too.
func (t *hostTopic) validate(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	switch t.check.run(ctx, from, m.Data) {
	case Accept:
		return pubsub.ValidationAccept
	case Ignore:
		return pubsub.ValidationIgnore
	default:
		return pubsub.ValidationReject
	}
}

// topicCheck is the validation pipeline shared by Host and MemNetwork.
type topicCheck struct {
	maxSize int
	limiter *rateLimiter
	v       Validator
}

func newTopicCheck(cfg Config, v Validator) topicCheck {
	return topicCheck{maxSize: cfg.MaxMessageSize, limiter: newRateLimiter(cfg.PeerMessageRate, cfg.PeerMessageBurst), v: v}
}

// run checks size first (cheap), then the rate of from, the peer that
// forwarded the message to us (ourselves for our own), then the node's
// validator.
//
// A message rejected for its forwarder's rate is not taken from another
// neighbour either while GossipSub remembers its id (it marks a message
// seen before the validator runs, and the id is the payload's hash), so
// the limit is a backstop set well above what a whole group sends
// (Config.PeerMessageRate); a flooder is soon graylisted by its score and
// its RPCs ignored.
func (c topicCheck) run(ctx context.Context, from peer.ID, data []byte) ValidationResult {
	if len(data) > c.maxSize {
		return Reject
	}
	if !c.limiter.allow(from, time.Now()) {
		return Reject
	}
	if c.v == nil {
		return Accept
	}
	switch r := c.v(ctx, from, data); r {
	case Accept, Ignore:
		return r
	default:
		return Reject
	}
}

func (t *hostTopic) close() {
	t.once.Do(func() {
		t.closed.Store(true)
		t.stopRdv()
		t.sub.Cancel()
		if err := t.topic.Close(); err != nil {
			t.n.log.Warn("close topic", "topic", t.name, "err", err)
		}
		if err := t.n.ps.UnregisterTopicValidator(t.name); err != nil {
			t.n.log.Debug("unregister validator", "topic", t.name, "err", err)
		}
		t.n.mu.Lock()
		if t.n.topics[t.name] == t {
			delete(t.n.topics, t.name)
		}
		t.n.mu.Unlock()
	})
}

// Publish sends data to the group's topic. The payload passes the same
// validation as a received one before it leaves this host.
func (n *Host) Publish(ctx context.Context, g GroupID, data []byte) error {
	if len(data) > n.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d > %d bytes", ErrMessageTooLarge, len(data), n.cfg.MaxMessageSize)
	}
	n.mu.Lock()
	t, ok := n.topics[TopicName(g)]
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if !ok {
		return ErrNotSubscribed
	}
	if err := t.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("p2p: publish: %w", err)
	}
	return nil
}

type hostSubscription struct{ t *hostTopic }

func (s *hostSubscription) Next(ctx context.Context) (*Message, error) {
	if s.t.closed.Load() {
		return nil, ErrClosed
	}
	m, err := s.t.sub.Next(ctx)
	if err != nil {
		if errors.Is(err, pubsub.ErrSubscriptionCancelled) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("p2p: next message: %w", err)
	}
	return &Message{
		Group:        s.t.group,
		Data:         m.Data,
		ReceivedFrom: m.ReceivedFrom,
		ID:           m.ID,
	}, nil
}

func (s *hostSubscription) Close() error {
	s.t.close()
	return nil
}

// rateLimiter is a token bucket per forwarding peer. It is bounded: when it
// tracks too many peers, full buckets (peers that have been quiet long
// enough to refill) are forgotten.
type rateLimiter struct {
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[peer.ID]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const maxRateBuckets = 4096

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), buckets: make(map[peer.ID]*bucket)}
}

func (l *rateLimiter) allow(p peer.ID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[p]
	if !ok {
		if len(l.buckets) >= maxRateBuckets {
			l.evictFull(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[p] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *rateLimiter) evictFull(now time.Time) {
	for p, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, p)
		}
	}
}

// meshTracer follows GRAFT and PRUNE to know each topic's mesh; the pubsub
// API does not expose it. Tracer methods are called synchronously from the
// pubsub event loop, so they only take a short lock.
type meshTracer struct {
	mu     sync.Mutex
	meshes map[string]map[peer.ID]struct{}

	droppedRPCs, throttled, rejected, prunesReceived, signedRejected atomic.Int64
}

// GossipStats are counters for diagnostics and metrics.
type GossipStats struct {
	DroppedRPCs int64 // outbound RPCs dropped because a peer's queue was full
	Throttled   int64 // inbound messages dropped by the validation throttle
	Rejected    int64 // messages that failed validation
	// SignedRejected counts messages dropped because they carried a libp2p
	// signature, author or sequence number, which group topics never do
	// (see startPubSub): a peer speaking the pre-version-2 wire format on
	// a version-2 topic name, which only a misbehaving peer does.
	SignedRejected int64
	// PrunesReceived counts PRUNEs from peers (a neighbour leaving a topic
	// or dropping us from its mesh). A neighbour that merely stops or
	// restarts sends none (see Host.Close).
	PrunesReceived int64
	// StaleConnsClosed counts connections closed because their peer
	// connected again and they no longer answered (liveness.go).
	StaleConnsClosed int64
	// PubSubLinksRenewed counts connected peers whose connections were
	// renewed because GossipSub had stopped writing to them (liveness.go).
	PubSubLinksRenewed int64
	// Redials counts redials of kept peers (KeepConnected) that were not
	// connected; Reconnects counts those that succeeded.
	Redials    int64
	Reconnects int64
	// RedialHints counts kept peers whose backoff a sign of life cut
	// short (keep.go, hint).
	RedialHints int64
}

// GossipStats returns the host's gossip counters.
func (n *Host) GossipStats() GossipStats {
	n.keep.mu.Lock()
	redials, reconnects, hints := n.keep.redials, n.keep.reconnects, n.keep.hints
	n.keep.mu.Unlock()
	return GossipStats{
		DroppedRPCs:      n.tracer.droppedRPCs.Load(),
		Throttled:        n.tracer.throttled.Load(),
		Rejected:         n.tracer.rejected.Load(),
		SignedRejected:   n.tracer.signedRejected.Load(),
		PrunesReceived:   n.tracer.prunesReceived.Load(),
		StaleConnsClosed: n.staleClosed.Load(),

		PubSubLinksRenewed: n.writersRevived.Load(),
		Redials:            redials,
		Reconnects:         reconnects,
		RedialHints:        hints,
	}
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer() *meshTracer {
	return &meshTracer{meshes: make(map[string]map[peer.ID]struct{})}
}

func (t *meshTracer) mesh(topic string) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]peer.ID, 0, len(t.meshes[topic]))
	for p := range t.meshes[topic] {
		out = append(out, p)
	}
	return out
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.meshes[topic]
	if m == nil {
		m = make(map[peer.ID]struct{})
		t.meshes[topic] = m
	}
	m[p] = struct{}{}
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.meshes[topic], p)
}

func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.meshes, topic)
}

// OnClosedOutboundStream is GossipSub dropping a peer (disconnected, or its
// stream died): the router removes it from every mesh without a PRUNE, so
// the tracer must too, or a peer that reconnects with the same ID would
// look as if it were still in the mesh.
func (t *meshTracer) OnClosedOutboundStream(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.meshes {
		delete(m, p)
	}
}

func (t *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (t *meshTracer) Join(string)                              {}
func (t *meshTracer) ValidateMessage(*pubsub.Message)          {}
func (t *meshTracer) DeliverMessage(*pubsub.Message)           {}
func (t *meshTracer) DuplicateMessage(*pubsub.Message)         {}
func (t *meshTracer) ThrottlePeer(peer.ID)                     {}

func (t *meshTracer) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationFailed:
		t.rejected.Add(1)
	case pubsub.RejectValidationThrottled, pubsub.RejectValidationQueueFull:
		t.throttled.Add(1)
	case pubsub.RejectUnexpectedSignature, pubsub.RejectUnexpectedAuthInfo:
		t.signedRejected.Add(1)
	}
}

func (t *meshTracer) RecvRPC(rpc *pubsub.RPC) {
	if n := len(rpc.GetControl().GetPrune()); n > 0 {
		t.prunesReceived.Add(int64(n))
	}
}

func (t *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         { t.droppedRPCs.Add(1) }
func (t *meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
