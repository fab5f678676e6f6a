package p2p

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// rawGossip is a plain go-libp2p host with its own GossipSub, to look at
// what a Host puts on the wire and to play peers that do not follow Grove.
type rawGossip struct {
	h  host.Host
	ps *pubsub.PubSub
}

func newRawGossip(t *testing.T, opts ...pubsub.Option) *rawGossip {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.Close() })
	gsp := pubsub.DefaultGossipSubParams()
	gsp.HeartbeatInterval = 100 * time.Millisecond
	ps, err := pubsub.NewGossipSub(ctx, h, append([]pubsub.Option{pubsub.WithGossipSubParams(gsp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &rawGossip{h: h, ps: ps}
}

func (r *rawGossip) addrInfo() peer.AddrInfo { return peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()} }

// join subscribes to the group's topic; received messages go to the
// returned channel (buffered, extra ones dropped) until the test ends.
func (r *rawGossip) join(t *testing.T, g GroupID) (*pubsub.Topic, <-chan *pubsub.Message) {
	t.Helper()
	topic, err := r.ps.Join(TopicName(g))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *pubsub.Message, 256)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			select {
			case ch <- m:
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); sub.Cancel(); <-done })
	return topic, ch
}

// wireTap records every message of every RPC a host receives; the other
// tracer events are meshTracer's, which ignores them.
type wireTap struct {
	*meshTracer
	mu   sync.Mutex
	msgs []*pb.Message
}

func newWireTap() *wireTap { return &wireTap{meshTracer: newMeshTracer()} }

func (w *wireTap) RecvRPC(rpc *pubsub.RPC) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, rpc.GetPublish()...)
}

func (w *wireTap) received() []*pb.Message {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// contentID is Grove's message id, for raw peers that must agree with it.
func contentID(m *pb.Message) string { return MessageID(m.Data) }

// TestGossipCarriesNoAuthorOrSignature: what a Host publishes reaches a
// plain GossipSub peer with no author, sequence number, key or signature,
// only the payload: an outsider on the topic cannot tell which device
// wrote it.
func TestGossipCarriesNoAuthorOrSignature(t *testing.T) {
	checkLeaks(t)
	h := newTestHost(t, nil)
	g := GroupID("wire")
	hsub, err := h.Subscribe(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hsub.Close()
	tap := newWireTap()
	// LaxNoSign: the raw peer verifies nothing, so it takes signed and
	// unsigned messages alike and the test sees whatever was sent.
	raw := newRawGossip(t, pubsub.WithMessageSignaturePolicy(pubsub.LaxNoSign),
		pubsub.WithMessageIdFn(contentID), pubsub.WithRawTracer(tap))
	_, rch := raw.join(t, g)
	if err := h.Connect(context.Background(), raw.addrInfo()); err != nil {
		t.Fatal(err)
	}
	var got *pubsub.Message
	for i := 0; got == nil; i++ {
		if i == 100 {
			t.Fatal("raw peer received nothing from the host")
		}
		if err := h.Publish(context.Background(), g, []byte(fmt.Sprintf("wire-%d", i))); err != nil {
			t.Fatal(err)
		}
		select {
		case got = <-rch:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got.ReceivedFrom != h.ID() {
		t.Fatalf("delivered from %s, want the host %s", got.ReceivedFrom, h.ID())
	}
	msgs := tap.received()
	if len(msgs) == 0 {
		t.Fatal("no message seen on the wire")
	}
	for _, m := range msgs {
		if m.From != nil || m.Seqno != nil || m.Signature != nil || m.Key != nil {
			t.Errorf("message %q carries from=%x seqno=%x signature=%x key=%x", m.Data, m.From, m.Seqno, m.Signature, m.Key)
		}
		if m.GetTopic() != TopicName(g) {
			t.Errorf("message on topic %q, want %q", m.GetTopic(), TopicName(g))
		}
	}
}

// TestSignedMessagesFromOldPeersRejected: a peer of the previous wire
// format (StrictSign, author and seqno on every message) that joins the
// same topic name is not understood either way: the Host rejects its
// signed messages (counted in SignedRejected, charged to its score) and it
// rejects the Host's unsigned ones. TopicName's version suffix keeps real
// old and new peers apart; this is what would happen without it.
func TestSignedMessagesFromOldPeersRejected(t *testing.T) {
	checkLeaks(t)
	h := newTestHost(t, nil)
	g := GroupID("old peer")
	hsub, err := h.Subscribe(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hsub.Close()
	old := newRawGossip(t) // go-libp2p-pubsub defaults: StrictSign
	otopic, och := old.join(t, g)
	if err := h.Connect(context.Background(), old.addrInfo()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "old peer to see the host on the topic", func() bool {
		return slices.Contains(otopic.ListPeers(), h.ID())
	})
	// The old peer may see the host's subscription before its stream to
	// the host is up (a publish then goes nowhere): publish until the host
	// has rejected some.
	for i := 0; h.GossipStats().SignedRejected < 3; i++ {
		if i == 100 {
			t.Fatalf("host did not reject the old peer's messages: %+v", h.GossipStats())
		}
		if err := otopic.Publish(context.Background(), []byte(fmt.Sprintf("old-%d", i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := h.Publish(context.Background(), g, []byte("new")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	for {
		m, err := hsub.Next(ctx)
		if err != nil {
			break
		}
		if string(m.Data) != "new" {
			t.Fatalf("host delivered %q from an old-format peer", m.Data)
		}
	}
	for len(och) > 0 {
		if m := <-och; string(m.Data) == "new" {
			t.Fatalf("old-format peer accepted unsigned %q", m.Data)
		}
	}
	if s, ok := h.PeerScore(old.h.ID()); !ok || s >= 0 {
		t.Errorf("old-format peer's score %v (scored %v), want negative", s, ok)
	}
}

// TestRateLimitKeysOnForwarder: messages carry no author, so the rate
// limit counts the peer that forwarded each one. A forwarder over its
// burst is cut off; another forwarder is not affected.
func TestRateLimitKeysOnForwarder(t *testing.T) {
	cfg := Config{PeerMessageRate: 0.001, PeerMessageBurst: 3}.withDefaults()
	tp := &hostTopic{check: newTopicCheck(cfg, nil)}
	x, y := peer.ID("x"), peer.ID("y")
	msg := func(i int, from peer.ID) *pubsub.Message {
		return &pubsub.Message{Message: &pb.Message{Data: []byte(fmt.Sprint(i))}, ReceivedFrom: from}
	}
	ctx := context.Background()
	for i := range 3 {
		if r := tp.validate(ctx, x, msg(i, x)); r != pubsub.ValidationAccept {
			t.Fatalf("message %d within the burst: %v", i, r)
		}
	}
	if r := tp.validate(ctx, x, msg(3, x)); r != pubsub.ValidationReject {
		t.Fatalf("message beyond the forwarder's burst: %v, want reject", r)
	}
	if r := tp.validate(ctx, y, msg(4, y)); r != pubsub.ValidationAccept {
		t.Fatalf("another forwarder's message: %v, want accept", r)
	}
}

// TestSamePayloadIsOneMessage: the message id is the payload's hash and
// nothing else travels with it, so the same payload published by two
// hosts, or twice by one, is delivered once everywhere.
func TestSamePayloadIsOneMessage(t *testing.T) {
	checkLeaks(t)
	hosts := []*Host{newTestHost(t, nil), newTestHost(t, nil), newTestHost(t, nil)}
	connect(t, hosts[0], hosts[1])
	connect(t, hosts[1], hosts[2])
	connect(t, hosts[0], hosts[2])
	g := GroupID("same payload")
	subs := make([]Subscription, len(hosts))
	for i, h := range hosts {
		s, err := h.Subscribe(g, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs[i] = s
	}
	waitAllReceive(t, hosts[0], g, subs)
	same := []byte("the same payload")
	// Back to back: each copy is on the wire before the other arrives.
	for _, h := range hosts[:2] {
		if err := h.Publish(context.Background(), g, same); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range subs {
		if m := nextMessage(t, s, 10*time.Second); string(m.Data) != string(same) || m.ID != MessageID(same) {
			t.Fatalf("host %d delivered %q id %x", i, m.Data, m.ID)
		}
	}
	if err := hosts[0].Publish(context.Background(), g, same); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		noMessage(t, s, 500*time.Millisecond)
	}
}
