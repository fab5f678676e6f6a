package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Both implementations of Network must behave the same for the node; these
// tests run against each.

type netFactory func(t *testing.T, n int, mod func(*Config)) []Network

func libp2pFactory(t *testing.T, n int, mod func(*Config)) []Network {
	out := make([]Network, n)
	for i := range out {
		out[i] = newTestHost(t, mod)
	}
	return out
}

func memFactory(t *testing.T, n int, mod func(*Config)) []Network {
	mn := NewMemNetwork()
	out := make([]Network, n)
	for i := range out {
		cfg := Config{StreamTimeout: 5 * time.Second, Logger: testLogger()}
		if mod != nil {
			mod(&cfg)
		}
		node, err := mn.NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Close() })
		out[i] = node
	}
	return out
}

func forEachImpl(t *testing.T, test func(t *testing.T, mk netFactory)) {
	t.Run("libp2p", func(t *testing.T) { checkLeaks(t); test(t, libp2pFactory) })
	t.Run("mem", func(t *testing.T) { checkLeaks(t); test(t, memFactory) })
}

func nextMessage(t *testing.T, s Subscription, timeout time.Duration) *Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return m
}

func noMessage(t *testing.T, s Subscription, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if m, err := s.Next(ctx); err == nil {
		t.Fatalf("unexpected message %q", m.Data)
	}
}

// waitTopicReady publishes probes from a until b's subscription sees one,
// so meshes (or links) are known to carry messages.
func waitTopicReady(t *testing.T, a Network, g GroupID, sub Subscription) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		probe := []byte(fmt.Sprintf("probe-%d-%d", i, time.Now().UnixNano()))
		if err := a.Publish(context.Background(), g, probe); err != nil {
			t.Fatalf("probe publish: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				break
			}
			if bytes.HasPrefix(m.Data, []byte("probe-")) {
				cancel()
				// drain further probes so the test starts clean
				for {
					c2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
					_, err := sub.Next(c2)
					cancel2()
					if err != nil {
						return
					}
				}
			}
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatal("topic never became ready")
		}
	}
}

func TestNetworkPubSub(t *testing.T) {
	forEachImpl(t, func(t *testing.T, mk netFactory) {
		ns := mk(t, 2, nil)
		a, b := ns[0], ns[1]
		connect(t, a, b)
		g := GroupID("group-1")
		other := GroupID("group-2")

		if err := a.Publish(context.Background(), g, []byte("x")); !errors.Is(err, ErrNotSubscribed) {
			t.Fatalf("publish unsubscribed: %v", err)
		}
		reject := func(ctx context.Context, from peer.ID, data []byte) ValidationResult {
			if bytes.HasPrefix(data, []byte("bad")) {
				return Reject
			}
			if bytes.HasPrefix(data, []byte("old")) {
				return Ignore
			}
			return Accept
		}
		sa, err := a.Subscribe(g, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Subscribe(g, nil); !errors.Is(err, ErrAlreadySubscribed) {
			t.Fatalf("double subscribe: %v", err)
		}
		sb, err := b.Subscribe(g, reject)
		if err != nil {
			t.Fatal(err)
		}
		sOther, err := b.Subscribe(other, nil)
		if err != nil {
			t.Fatal(err)
		}
		waitTopicReady(t, a, g, sb)
		drainAll(sa)

		for _, p := range []string{"bad-1", "old-1", "good-1"} {
			if err := a.Publish(context.Background(), g, []byte(p)); err != nil {
				t.Fatalf("publish %s: %v", p, err)
			}
		}
		m := nextMessage(t, sb, 5*time.Second)
		if string(m.Data) != "good-1" || m.ReceivedFrom != a.ID() || m.ID != MessageID([]byte("good-1")) {
			t.Fatalf("got %q from %s", m.Data, m.ReceivedFrom)
		}
		// The publisher receives its own messages, like GossipSub.
		for _, want := range []string{"bad-1", "old-1", "good-1"} {
			if m := nextMessage(t, sa, 5*time.Second); string(m.Data) != want {
				t.Fatalf("own delivery: got %q want %q", m.Data, want)
			}
		}
		noMessage(t, sOther, 200*time.Millisecond)

		big := make([]byte, DefaultMaxMessageSize+1)
		if err := a.Publish(context.Background(), g, big); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("oversize publish: %v", err)
		}

		// Leave at run time, then rejoin.
		if err := sb.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
		if err := b.Publish(context.Background(), g, []byte("x")); !errors.Is(err, ErrNotSubscribed) {
			t.Fatalf("publish after leave: %v", err)
		}
		sb2, err := b.Subscribe(g, nil)
		if err != nil {
			t.Fatalf("resubscribe: %v", err)
		}
		waitTopicReady(t, a, g, sb2)
		if err := a.Publish(context.Background(), g, []byte("again")); err != nil {
			t.Fatal(err)
		}
		if m := nextMessage(t, sb2, 5*time.Second); string(m.Data) != "again" {
			t.Fatalf("after rejoin got %q", m.Data)
		}
	})
}

func drainAll(s Subscription) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := s.Next(ctx)
		cancel()
		if err != nil {
			return
		}
	}
}

func TestNetworkRequest(t *testing.T) {
	forEachImpl(t, func(t *testing.T, mk netFactory) {
		ns := mk(t, 2, func(c *Config) { c.MaxFrameSize = 1024; c.StreamTimeout = 500 * time.Millisecond })
		a, b := ns[0], ns[1]
		connect(t, a, b)
		b.Serve(ProtocolKeyPackage, ServeRequests(func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
			if from != a.ID() {
				return nil, fmt.Errorf("unexpected peer %s", from)
			}
			switch string(req) {
			case "fail":
				return nil, errors.New("handler failed")
			case "slow":
				time.Sleep(800 * time.Millisecond)
			case "big":
				return make([]byte, 2048), nil
			}
			return append([]byte("kp:"), req...), nil
		}))
		ctx := context.Background()
		resp, err := a.Request(ctx, b.ID(), ProtocolKeyPackage, []byte("alice"))
		if err != nil || string(resp) != "kp:alice" {
			t.Fatalf("Request = %q, %v", resp, err)
		}
		if _, err := a.Request(ctx, b.ID(), ProtocolKeyPackage, []byte("fail")); !errors.Is(err, ErrRemote) {
			t.Fatalf("failing handler: got %v, want ErrRemote", err)
		}
		if _, err := a.Request(ctx, b.ID(), ProtocolKeyPackage, []byte("big")); !errors.Is(err, ErrRemote) {
			t.Fatalf("oversize response: got %v, want ErrRemote (server cannot send it)", err)
		}
		if _, err := a.Request(ctx, b.ID(), ProtocolKeyPackage, make([]byte, 2048)); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("oversize request: got %v, want ErrFrameTooLarge", err)
		}
		if _, err := a.Request(ctx, b.ID(), ProtocolKeyPackage, []byte("slow")); !errors.Is(err, ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("slow handler: got %v, want timeout", err)
		}
		if _, err := a.Request(ctx, b.ID(), ProtocolSync, []byte("x")); err == nil {
			t.Fatal("request to unserved protocol succeeded")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := a.Request(cctx, b.ID(), ProtocolKeyPackage, []byte("x")); err == nil {
			t.Fatal("request with cancelled context succeeded")
		}
	})
}

// TestNetworkStreamBackPressure streams frames to a slow reader and checks
// that the sender is held back (it can run ahead by at most the transport's
// buffering), that every frame arrives in order, and that CloseWrite ends
// the stream with io.EOF.
func TestNetworkStreamBackPressure(t *testing.T) {
	forEachImpl(t, func(t *testing.T, mk netFactory) {
		ns := mk(t, 2, nil)
		a, b := ns[0], ns[1]
		connect(t, a, b)
		const frames = 64
		frame := make([]byte, 64<<10)
		var received atomic.Int64
		release := make(chan struct{})
		done := make(chan error, 1)
		b.Serve(ProtocolSync, func(ctx context.Context, s Stream) {
			<-release // do not read until the sender has had time to run ahead
			for i := 0; ; i++ {
				f, err := s.Recv()
				if err == io.EOF {
					if i != frames {
						done <- fmt.Errorf("EOF after %d frames", i)
					} else {
						done <- s.Send([]byte("done"))
					}
					return
				}
				if err != nil {
					done <- err
					return
				}
				if len(f) != len(frame) || f[0] != byte(i) {
					done <- fmt.Errorf("frame %d out of order or damaged", i)
					return
				}
				received.Add(1)
			}
		})
		s, err := a.OpenStream(context.Background(), b.ID(), ProtocolSync)
		if err != nil {
			t.Fatal(err)
		}
		sent := make(chan int, frames)
		go func() {
			for i := range frames {
				frame[0] = byte(i)
				if err := s.Send(frame); err != nil {
					close(sent)
					return
				}
				sent <- i
			}
			s.CloseWrite()
			close(sent)
		}()
		time.Sleep(300 * time.Millisecond)
		ahead := len(sent)
		// yamux and QUIC buffer a few MiB per stream; the in-memory stream
		// buffers one frame. Either way the writer must be blocked well
		// before all 4 MiB are out.
		if ahead >= frames {
			t.Fatalf("sender wrote all %d frames with no reader: no back-pressure", ahead)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := received.Load(); got != frames {
			t.Fatalf("received %d frames, want %d", got, frames)
		}
		f, err := s.Recv()
		if err != nil || string(f) != "done" {
			t.Fatalf("final frame %q, %v", f, err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("after handler return: %v, want io.EOF", err)
		}
		s.Close()
	})
}

func TestNetworkEventsAndClose(t *testing.T) {
	forEachImpl(t, func(t *testing.T, mk netFactory) {
		ns := mk(t, 2, nil)
		a, b := ns[0], ns[1]
		connect(t, a, b)
		waitEvent(t, b, a.ID(), PeerConnected)
		sub, err := a.Subscribe(GroupID("g"), nil)
		if err != nil {
			t.Fatal(err)
		}
		blocked := make(chan error, 1)
		b.Serve(ProtocolJoin, func(ctx context.Context, s Stream) {
			_, err := s.Recv() // blocks until a closes
			blocked <- err
		})
		s, err := a.OpenStream(context.Background(), b.ID(), ProtocolJoin)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, b, a.ID(), PeerDisconnected)
		if _, err := sub.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
		if err := a.Publish(context.Background(), GroupID("g"), []byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("Publish after Close: %v", err)
		}
		if _, ok := <-a.Events(); ok {
			// drain: events queued before Close may remain
			for range a.Events() {
			}
		}
		select {
		case <-blocked:
		case <-time.After(10 * time.Second):
			t.Fatal("handler on b still blocked after a closed")
		}
	})
}

func waitEvent(t *testing.T, n Network, p peer.ID, kind PeerEventKind) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-n.Events():
			if ev.Peer == p && ev.Kind == kind {
				return
			}
		case <-timeout:
			t.Fatalf("no %v event for %s", kind, p)
		}
	}
}
