package p2p

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// The stream protocols Grove speaks. Their message contents are the node's;
// this package frames and delivers them.
const (
	// ProtocolJoin redeems an invite: the joiner sends an invite secret and a
	// KeyPackage, the inviter answers with the Welcome.
	ProtocolJoin protocol.ID = "/grove/join/1"
	// ProtocolSync is anti-entropy: exchange per-group heads, fetch entries.
	ProtocolSync protocol.ID = "/grove/sync/1"
	// ProtocolKeyPackage fetches a fresh KeyPackage from a contact.
	ProtocolKeyPackage protocol.ID = "/grove/keypackage/1"
)

// GroupID names a group to the network: opaque bytes of which topic
// names and rendezvous keys are hashes. Grove's node passes a key derived
// from the group secret (node/envelope.go), not the MLS group id, so that
// neither can be computed from the group id an invite code carries.
type GroupID []byte

// TopicName is the GossipSub topic of a group: hex(SHA-256("grove topic" ||
// g)) + "/" + topicWireVersion. Peers that do not know g cannot guess it.
func TopicName(g GroupID) string {
	h := sha256.New()
	h.Write([]byte("grove topic"))
	h.Write(g)
	return hex.EncodeToString(h.Sum(nil)) + "/" + topicWireVersion
}

// topicWireVersion names the gossip wire format of group topics, so that
// hosts speaking different formats never share a topic (and mesh) and
// silently drop each other's messages.
//
//   - 1 (no suffix): libp2p StrictSign, every message carrying its author's
//     peer id, sequence number and signature.
//   - 2: StrictNoSign without author or sequence number (startPubSub). A
//     version-2 host rejects every version-1 message and a version-1 host
//     every version-2 message: a wire break, hence the new topic names.
//   - 3: payloads are node's envelopes (node/envelope.go), named after a
//     key from the group secret rather than the group id.
const topicWireVersion = "3"

// RendezvousKey is the DHT namespace under which a group's members advertise
// themselves: hex(SHA-256("grove rendezvous" || group id)). It is distinct
// from the topic name so that the DHT learns nothing it could subscribe to.
func RendezvousKey(g GroupID) string {
	h := sha256.New()
	h.Write([]byte("grove rendezvous"))
	h.Write(g)
	return "grove/" + hex.EncodeToString(h.Sum(nil))
}

// MessageID is the id of a gossip payload: hex(SHA-256(payload)). Identical
// payloads are the same message whoever publishes them, which is what MLS
// needs (a replayed ciphertext is a duplicate, not a new message).
func MessageID(payload []byte) string {
	sum := sha256.Sum256(payload)
	return string(sum[:])
}

// ValidationResult is a validator's verdict on a gossip payload.
type ValidationResult int

const (
	// Accept delivers the message and forwards it to the mesh.
	Accept ValidationResult = iota
	// Reject drops the message and penalises the peer that sent it.
	Reject
	// Ignore drops the message without penalty (e.g. an old epoch).
	Ignore
)

func (r ValidationResult) String() string {
	switch r {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Ignore:
		return "ignore"
	}
	return "invalid"
}

// Validator judges a payload received on a group's topic before it is
// delivered or forwarded. from is the peer that sent it to us (not
// necessarily its author). It must not block for long: the gossip pipeline
// waits for it. A nil Validator accepts everything that passes the size and
// rate checks.
type Validator func(ctx context.Context, from peer.ID, payload []byte) ValidationResult

// Message is a gossip payload delivered to a subscriber.
type Message struct {
	Group        GroupID
	Data         []byte
	ReceivedFrom peer.ID // the neighbour that forwarded it
	ID           string  // MessageID(Data)
}

// Subscription is a group topic joined by this host. Close leaves the topic.
type Subscription interface {
	// Next blocks until a message arrives, ctx ends or the subscription is
	// closed (ErrClosed).
	Next(ctx context.Context) (*Message, error)
	// Close leaves the topic; later Next calls return ErrClosed. The
	// neighbours are told (GossipSub PRUNE) and will not take this host
	// back into their meshes for about a second. A device that is only
	// stopping closes the Network instead, with its subscriptions open.
	Close() error
}

// Stream is one framed, bidirectional protocol stream. Send blocks while the
// peer is not reading (transport flow control), which is the back-pressure
// the streaming protocols rely on. Each Send and Recv has its own deadline of
// Config.StreamTimeout.
type Stream interface {
	// Send writes one frame.
	Send(frame []byte) error
	// Recv reads one frame. io.EOF means the peer closed its side cleanly.
	Recv() ([]byte, error)
	// CloseWrite tells the peer no more frames will be sent.
	CloseWrite() error
	// Close ends the stream; Reset aborts it.
	Close() error
	Reset() error
	RemotePeer() peer.ID
	Protocol() protocol.ID
}

// StreamHandler serves one inbound stream. The stream is closed when the
// handler returns; ctx ends when the Network closes.
type StreamHandler func(ctx context.Context, s Stream)

// RequestHandler answers a single request frame with a single response frame.
type RequestHandler func(ctx context.Context, from peer.ID, req []byte) ([]byte, error)

// PeerEventKind says what happened to a peer.
type PeerEventKind int

const (
	PeerConnected PeerEventKind = iota + 1
	PeerDisconnected
)

func (k PeerEventKind) String() string {
	switch k {
	case PeerConnected:
		return "connected"
	case PeerDisconnected:
		return "disconnected"
	}
	return "unknown"
}

// PeerEvent reports a change in connectivity to a peer.
type PeerEvent struct {
	Peer peer.ID
	Kind PeerEventKind
	Time time.Time
}

// Network is what the node needs from the network: group gossip, framed
// request/response and streams, and peer connectivity. Implementations are
// safe for concurrent use.
type Network interface {
	// ID is this device's peer ID.
	ID() peer.ID
	// AddrInfo is how others can reach this host.
	AddrInfo() peer.AddrInfo
	// Connect dials a peer and remembers its addresses.
	Connect(ctx context.Context, ai peer.AddrInfo) error
	// Peers lists connected peers.
	Peers() []peer.ID

	// Subscribe joins the group's topic with v as its validator. A group can
	// have one subscription at a time (ErrAlreadySubscribed).
	Subscribe(g GroupID, v Validator) (Subscription, error)
	// Publish sends a payload to the group's topic; the group must be
	// subscribed (ErrNotSubscribed).
	Publish(ctx context.Context, g GroupID, data []byte) error

	// Serve installs the handler for a protocol, replacing any earlier one.
	Serve(proto protocol.ID, h StreamHandler)
	// OpenStream opens a framed stream to a peer.
	OpenStream(ctx context.Context, p peer.ID, proto protocol.ID) (Stream, error)
	// Request sends one frame and waits for one frame in reply.
	Request(ctx context.Context, p peer.ID, proto protocol.ID, req []byte) ([]byte, error)

	// Events delivers peer connectivity changes. The channel is buffered;
	// when the node falls behind, events are dropped and logged rather than
	// stalling the network. It is closed by Close.
	Events() <-chan PeerEvent

	// Close stops every goroutine the Network started and waits for them.
	// Open subscriptions end (Next returns ErrClosed) without leaving
	// their topics: to the peers a closed network is a device that
	// disconnected, which they take back into their meshes as soon as it
	// returns. Close it before closing subscriptions when stopping.
	Close() error
}

// Errors callers act on.
var (
	ErrClosed            = errors.New("p2p: closed")
	ErrNotSubscribed     = errors.New("p2p: group not subscribed")
	ErrAlreadySubscribed = errors.New("p2p: group already subscribed")
	ErrMessageTooLarge   = errors.New("p2p: message too large")
	ErrNoHandler         = errors.New("p2p: no handler for protocol")
	ErrRemote            = errors.New("p2p: remote handler failed")
)

// ServeRequests adapts a RequestHandler to a StreamHandler: it reads one
// request frame, calls h, and writes the response frame. When h fails the
// stream is reset, so the requester sees an error rather than a reply.
func ServeRequests(h RequestHandler) StreamHandler {
	return func(ctx context.Context, s Stream) {
		req, err := s.Recv()
		if err != nil {
			s.Reset()
			return
		}
		resp, err := h(ctx, s.RemotePeer(), req)
		if err != nil {
			s.Reset()
			return
		}
		if err := s.Send(resp); err != nil {
			s.Reset()
			return
		}
		s.CloseWrite()
	}
}

// request runs one request/response exchange over a stream from open. The
// whole exchange is bounded by ctx and by timeout.
func request(ctx context.Context, timeout time.Duration, proto protocol.ID, req []byte, open func(context.Context) (Stream, error)) ([]byte, error) {
	// A context that is already done never starts an exchange (the reset
	// below runs asynchronously and could lose the race to a fast reply).
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("p2p: request %s: %w", proto, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := open(ctx)
	if err != nil {
		return nil, err
	}
	// A cancelled context aborts the exchange even while blocked in IO.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	resp, err := doRequest(s, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("p2p: request %s: %w", proto, ctx.Err())
		}
		return nil, fmt.Errorf("p2p: request %s: %w", proto, err)
	}
	return resp, nil
}

// doRequest is the requester side of ServeRequests over any Stream.
func doRequest(s Stream, req []byte) ([]byte, error) {
	if err := s.Send(req); err != nil {
		s.Reset()
		return nil, err
	}
	// A handler that fails resets the stream, which can cancel our write
	// side before CloseWrite runs (seen on QUIC: "close called for canceled
	// stream"). What the remote did decides the outcome, so read its answer
	// even when CloseWrite fails.
	closeErr := s.CloseWrite()
	resp, err := s.Recv()
	if err == io.EOF {
		// The handler closed without replying (it failed or had nothing).
		return nil, fmt.Errorf("%w: no reply", ErrRemote)
	}
	if err != nil {
		s.Reset()
		if closeErr != nil && !errors.Is(err, ErrRemote) && !errors.Is(err, ErrTimeout) {
			return nil, fmt.Errorf("%w: stream cancelled: %v (%v)", ErrRemote, closeErr, err)
		}
		return nil, err
	}
	s.Close()
	return resp, nil
}
