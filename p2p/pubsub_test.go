package p2p

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sparseTopology connects host i to i+1 (a ring) and, for even i, to i+3:
// every host has two to four neighbours, none has all.
func sparseTopology(t *testing.T, hosts []*Host) {
	t.Helper()
	n := len(hosts)
	for i := range hosts {
		connect(t, hosts[i], hosts[(i+1)%n])
		if i%2 == 0 && n > 4 {
			connect(t, hosts[i], hosts[(i+3)%n])
		}
	}
}

// waitAllReceive publishes probes from pub until every subscription has
// seen at least one, then drains the probes.
func waitAllReceive(t *testing.T, pub Network, g GroupID, subs []Subscription) {
	t.Helper()
	got := make([]atomic.Bool, len(subs))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := s.Next(ctx)
				if err != nil {
					return
				}
				if bytes.HasPrefix(m.Data, []byte("probe-")) {
					got[i].Store(true)
				}
			}
		}()
	}
	all := func() bool {
		for i := range got {
			if !got[i].Load() {
				return false
			}
		}
		return true
	}
	for i := 0; !all(); i++ {
		if ctx.Err() != nil {
			t.Fatal("not every host received a probe: mesh did not form")
		}
		pub.Publish(ctx, g, []byte(fmt.Sprintf("probe-%d", i)))
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let stragglers arrive
	cancel()
	wg.Wait()
}

// TestGossipTenHostsExactlyOnce: 10 hosts in a sparse topology, 1,000
// messages from all of them on one topic; every subscriber delivers every
// message to the application exactly once.
func TestGossipTenHostsExactlyOnce(t *testing.T) {
	checkLeaks(t)
	const nHosts, nMsgs = 10, 1000
	hosts := make([]*Host, nHosts)
	for i := range hosts {
		hosts[i] = newTestHost(t, nil)
	}
	sparseTopology(t, hosts)
	g := GroupID("ten-hosts")
	subs := make([]Subscription, nHosts)
	for i, h := range hosts {
		s, err := h.Subscribe(g, func(ctx context.Context, from peer.ID, data []byte) ValidationResult { return Accept })
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	waitAllReceive(t, hosts[0], g, subs)

	counts := make([]map[string]int, nHosts)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var complete atomic.Int32
	for i, s := range subs {
		counts[i] = make(map[string]int)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := s.Next(ctx)
				if err != nil {
					return
				}
				if bytes.HasPrefix(m.Data, []byte("probe-")) {
					continue
				}
				counts[i][string(m.Data)]++
				if len(counts[i]) == nMsgs && counts[i][string(m.Data)] == 1 {
					complete.Add(1)
				}
			}
		}()
	}
	var pubWG sync.WaitGroup
	for i, h := range hosts {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for j := i; j < nMsgs; j += nHosts {
				if err := h.Publish(ctx, g, []byte(fmt.Sprintf("msg-%04d", j))); err != nil {
					t.Errorf("publish %d: %v", j, err)
					return
				}
			}
		}()
	}
	pubWG.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for complete.Load() < nHosts && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would show up here
	cancel()
	wg.Wait()
	for i, c := range counts {
		t.Logf("host %d: %+v", i, hosts[i].GossipStats())
		if len(c) != nMsgs {
			t.Errorf("host %d received %d distinct messages, want %d", i, len(c), nMsgs)
		}
		for m, k := range c {
			if k != 1 {
				t.Errorf("host %d delivered %s %d times", i, m, k)
			}
		}
	}
}

// TestInvalidPayloadStopsAtFirstHop: on the line X - B - C - D, X (which
// accepts anything) publishes a payload that B, C and D reject. B rejects
// it and penalises X; C and D never see it. A valid payload from X still
// crosses the whole line.
func TestInvalidPayloadStopsAtFirstHop(t *testing.T) {
	checkLeaks(t)
	hosts := make([]*Host, 4)
	for i := range hosts {
		hosts[i] = newTestHost(t, nil)
	}
	for i := 0; i+1 < len(hosts); i++ {
		connect(t, hosts[i], hosts[i+1])
	}
	g := GroupID("first-hop")
	var mu sync.Mutex
	seen := make([][]string, len(hosts))
	subs := make([]Subscription, len(hosts))
	for i, h := range hosts {
		var v Validator
		if i > 0 {
			v = func(ctx context.Context, from peer.ID, data []byte) ValidationResult {
				mu.Lock()
				seen[i] = append(seen[i], string(data))
				mu.Unlock()
				if bytes.HasPrefix(data, []byte("bad")) {
					return Reject
				}
				return Accept
			}
		}
		s, err := h.Subscribe(g, v)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	waitAllReceive(t, hosts[0], g, subs)
	x := hosts[0]
	// The valid payload goes first: three rejected payloads push X's score
	// at B below the graylist threshold (3² × -10 < -80), after which B
	// rightly ignores everything X sends, so a "good" published after them
	// would race the score update.
	if err := x.Publish(context.Background(), g, []byte("good")); err != nil {
		t.Fatal(err)
	}
	if m := nextMessage(t, subs[3], 10*time.Second); string(m.Data) != "good" {
		t.Fatalf("D delivered %q, want the good payload", m.Data)
	}
	for i := range 3 {
		if err := x.Publish(context.Background(), g, []byte(fmt.Sprintf("bad-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "B to validate the three invalid payloads", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range seen[1] {
			if bytes.HasPrefix([]byte(s), []byte("bad-")) {
				n++
			}
		}
		return n == 3
	})
	time.Sleep(time.Second) // several heartbeats of gossip for a leak to happen
	mu.Lock()
	defer mu.Unlock()
	count := func(i int, prefix string) int {
		n := 0
		for _, s := range seen[i] {
			if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
				n++
			}
		}
		return n
	}
	if got := count(1, "bad-"); got != 3 {
		t.Errorf("B validated %d invalid payloads, want 3", got)
	}
	for i := 2; i < 4; i++ {
		if got := count(i, "bad-"); got != 0 {
			t.Errorf("host %d saw %d invalid payloads; they propagated past the first hop", i, got)
		}
		if got := count(i, "good"); got != 1 {
			t.Errorf("host %d validated the good payload %d times", i, got)
		}
	}
	waitFor(t, 5*time.Second, "X's score at B to drop below zero", func() bool {
		s, ok := hosts[1].PeerScore(x.ID())
		return ok && s < 0
	})
	for i, want := range []int64{0, 3, 0, 0} {
		if got := hosts[i].GossipStats().Rejected; got != want {
			t.Errorf("host %d counted %d rejected messages, want %d", i, got, want)
		}
	}
}

// TestFloodingPeerIsPenalisedAndPruned: a peer running plain GossipSub
// with Grove's wire format (unsigned, no author) floods the topic far
// beyond the per-peer rate. The victim rejects the excess, charged to the
// flooder as the forwarding peer, the flooder's score goes negative and it
// is pruned from the victim's mesh, while an honest peer keeps its place.
func TestFloodingPeerIsPenalisedAndPruned(t *testing.T) {
	checkLeaks(t)
	slow := func(c *Config) { c.PeerMessageRate = 5; c.PeerMessageBurst = 10 }
	victim := newTestHost(t, slow)
	honest := newTestHost(t, slow)
	connect(t, honest, victim)

	fh, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithCancel(context.Background())
	t.Cleanup(func() { fcancel(); fh.Close() })
	gsp := pubsub.DefaultGossipSubParams()
	gsp.HeartbeatInterval = 100 * time.Millisecond
	fps, err := pubsub.NewGossipSub(fctx, fh, pubsub.WithGossipSubParams(gsp),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return MessageID(m.Data) }))
	if err != nil {
		t.Fatal(err)
	}
	g := GroupID("flood")
	ftopic, err := fps.Join(TopicName(g))
	if err != nil {
		t.Fatal(err)
	}
	fsub, err := ftopic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fsub.Cancel)
	go func() {
		for {
			if _, err := fsub.Next(fctx); err != nil {
				return
			}
		}
	}()
	if err := victim.Connect(context.Background(), peer.AddrInfo{ID: fh.ID(), Addrs: fh.Addrs()}); err != nil {
		t.Fatal(err)
	}
	vsub, err := victim.Subscribe(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	hsub, err := honest.Subscribe(g, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hsub.Close()
	waitFor(t, 10*time.Second, "flooder and honest peer in the victim's mesh", func() bool {
		m := victim.MeshPeers(g)
		return slices.Contains(m, fh.ID()) && slices.Contains(m, honest.ID())
	})

	for i := range 500 {
		if err := ftopic.Publish(fctx, []byte(fmt.Sprintf("flood-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "flooder's score below zero", func() bool {
		s, ok := victim.PeerScore(fh.ID())
		return ok && s < 0
	})
	waitFor(t, 10*time.Second, "flooder pruned from the victim's mesh", func() bool {
		return !slices.Contains(victim.MeshPeers(g), fh.ID())
	})
	if s, _ := victim.PeerScore(honest.ID()); s < 0 {
		t.Errorf("honest peer's score %v is negative", s)
	}
	if !slices.Contains(victim.MeshPeers(g), honest.ID()) {
		t.Error("honest peer was pruned too")
	}
	// The victim delivered at most the burst allowance of the flood.
	delivered := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		m, err := vsub.Next(ctx)
		cancel()
		if err != nil {
			break
		}
		if bytes.HasPrefix(m.Data, []byte("flood-")) {
			delivered++
		}
	}
	if delivered > 20 {
		t.Errorf("victim delivered %d flood messages; rate limit not applied", delivered)
	}
}
