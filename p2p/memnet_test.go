package p2p

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMemNetworkHopByHop: on the line A - B - C, B rejects a payload, so C
// never sees it; after B and C disconnect, nothing crosses, and reopening
// streams to a disconnected peer fails with ErrNotConnected.
func TestMemNetworkHopByHop(t *testing.T) {
	checkLeaks(t)
	ns := memFactory(t, 3, nil)
	a, b, c := ns[0], ns[1], ns[2]
	connect(t, a, b)
	connect(t, b, c)
	g := GroupID("g")
	var mu sync.Mutex
	var cSaw [][]byte
	sa, _ := a.Subscribe(g, nil)
	sb, _ := b.Subscribe(g, func(ctx context.Context, from peer.ID, d []byte) ValidationResult {
		if bytes.HasPrefix(d, []byte("bad")) {
			return Reject
		}
		return Accept
	})
	sc, _ := c.Subscribe(g, func(ctx context.Context, from peer.ID, d []byte) ValidationResult {
		mu.Lock()
		cSaw = append(cSaw, d)
		mu.Unlock()
		return Accept
	})
	_ = sa
	if err := a.Publish(context.Background(), g, []byte("bad")); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(context.Background(), g, []byte("good")); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, sc, time.Second); string(m.Data) != "good" || m.ReceivedFrom != b.ID() {
		t.Fatalf("C got %q from %s", m.Data, m.ReceivedFrom)
	}
	if m := nextMessage(t, sb, time.Second); string(m.Data) != "good" {
		t.Fatalf("B got %q", m.Data)
	}
	mu.Lock()
	if len(cSaw) != 1 {
		t.Fatalf("C validated %d payloads, want only the good one", len(cSaw))
	}
	mu.Unlock()
	// Republishing the same payload is a duplicate (message id = hash).
	if err := a.Publish(context.Background(), g, []byte("good")); err != nil {
		t.Fatal(err)
	}
	noMessage(t, sc, 100*time.Millisecond)

	b.(*MemNode).Disconnect(c.ID())
	if err := a.Publish(context.Background(), g, []byte("after")); err != nil {
		t.Fatal(err)
	}
	noMessage(t, sc, 100*time.Millisecond)
	if _, err := b.OpenStream(context.Background(), c.ID(), ProtocolSync); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("stream to disconnected peer: %v", err)
	}
	if _, err := a.OpenStream(context.Background(), b.ID(), ProtocolSync); !errors.Is(err, ErrNoHandler) {
		t.Fatalf("stream to unserved protocol: %v", err)
	}
}

// TestMemNodeKeepStatus: MemNode reports a kept set's connectivity and
// since when none of it was linked, and does not heal a partition.
func TestMemNodeKeepStatus(t *testing.T) {
	m := NewMemNetwork()
	var nodes []*MemNode
	for range 3 {
		n, err := m.NewNode(Config{Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	connect(t, a, b)
	a.KeepConnected("g", []peer.ID{b.ID(), c.ID(), a.ID()})
	if s := a.KeepStatus("g"); s.Wanted != 2 || s.Connected != 1 || !s.NoneSince.IsZero() {
		t.Fatalf("one of two linked: %+v", s)
	}
	cut := time.Now()
	a.Disconnect(b.ID())
	s := a.KeepStatus("g")
	if s.Connected != 0 || s.NoneSince.Before(cut) {
		t.Fatalf("none linked: %+v (cut at %v)", s, cut)
	}
	time.Sleep(10 * time.Millisecond)
	if s2 := a.KeepStatus("g"); !s2.NoneSince.Equal(s.NoneSince) || len(a.Peers()) != 0 {
		t.Fatalf("later: %+v, peers %v", s2, a.Peers())
	}
	connect(t, a, c)
	if s := a.KeepStatus("g"); s.Connected != 1 || !s.NoneSince.IsZero() {
		t.Fatalf("relinked: %+v", s)
	}
	a.KeepConnected("g", nil)
	if s := a.KeepStatus("g"); s != (KeepStatus{}) {
		t.Fatalf("removed: %+v", s)
	}
}
