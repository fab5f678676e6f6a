package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"github.com/libp2p/go-libp2p/core/protocol"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
)

// testTiming shortens every protocol timer so that tests run in seconds.
func testTiming(c *Config) {
	c.CommitDelta = 20 * time.Millisecond
	c.FinalityAge = 400 * time.Millisecond
	c.FinalityGrace = 100 * time.Millisecond
	c.TipInterval = 200 * time.Millisecond
	c.PersistEvery = 200 * time.Millisecond
}

func testLogger() *slog.Logger {
	if os.Getenv("GROVE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// memNode starts a node on a MemNetwork node.
func memNode(t *testing.T, mn *p2p.MemNetwork, name string) *Node {
	t.Helper()
	mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Home: t.TempDir(), Name: name, Network: mnode, Logger: testLogger().With("node", name)}
	testTiming(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		mnode.Close()
	})
	return n
}

// realNode starts a node on a real libp2p host on 127.0.0.1 with its store
// in home.
func realNode(t *testing.T, home, name string) *Node {
	t.Helper()
	cfg := Config{Home: home, Name: name, Logger: testLogger().With("node", name),
		P2P: p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HeartbeatInterval: 100 * time.Millisecond, Logger: testLogger()}}
	testTiming(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %v: %v", what, d, err)
}

func texts(t *testing.T, n *Node, group string) []string {
	t.Helper()
	ms, err := n.Log(context.Background(), group, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

func hasTexts(n *Node, group string, want ...string) error {
	ms, err := n.Log(context.Background(), group, 100000)
	if err != nil {
		return err
	}
	have := map[string]int{}
	for _, m := range ms {
		have[m.Text]++
	}
	var missing []string
	for _, w := range want {
		if have[w] == 0 {
			missing = append(missing, w)
		}
	}
	for txt, c := range have {
		if c > 1 {
			return fmt.Errorf("%q shown %d times", txt, c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s lacks %d messages (e.g. %q)", n.self.Name, len(missing), missing[0])
	}
	return nil
}

func memberCount(n *Node, group string) int {
	ms, err := n.Members(context.Background(), group)
	if err != nil {
		return -1
	}
	return len(ms)
}

func sameEpoch(ns []*Node, group string) error {
	var first api.Group
	for i, n := range ns {
		gs, err := n.Groups(context.Background())
		if err != nil {
			return err
		}
		var g *api.Group
		for j := range gs {
			if gs[j].ID == group {
				g = &gs[j]
			}
		}
		if g == nil {
			return fmt.Errorf("%s has no group", n.self.Name)
		}
		if i == 0 {
			first = *g
			continue
		}
		if g.EpochID != first.EpochID {
			return fmt.Errorf("%s on epoch %d %s, %s on %d %s", ns[0].self.Name, first.Epoch, first.EpochID[:8], n.self.Name, g.Epoch, g.EpochID[:8])
		}
	}
	return nil
}

// checkLeaks fails the test if goroutines started by the test outlive it.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before+2 {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				var ours []string
				for _, g := range strings.Split(string(buf), "\n\n") {
					if strings.Contains(g, "grove/node.") {
						ours = append(ours, g)
					}
				}
				if len(ours) > 0 {
					t.Errorf("%d goroutines leaked (had %d):\n%s", n-before, before, strings.Join(ours, "\n\n"))
				}
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func protocolID(s string) protocol.ID { return protocol.ID(s) }

func decodeHex(s string) ([]byte, error) { return hex.DecodeString(s) }

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// memNodeClock is memNode with a given clock.
func memNodeClock(t *testing.T, mn *p2p.MemNetwork, name string, clock Clock) *Node {
	t.Helper()
	mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Home: t.TempDir(), Name: name, Network: mnode, Logger: testLogger().With("node", name), Clock: clock}
	testTiming(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		mnode.Close()
	})
	return n
}

// wrappedMemGroup builds a group of the named members on a MemNetwork with test
// timing: the first creates it and invites the others, all connected to
// each other. setup may wrap each member's network and adjust its config.
// It returns once everyone is on one epoch and a few tips went round (a
// joiner commits only once another member has been seen on its epoch).
func wrappedMemGroup(t *testing.T, setup func(name string, net p2p.Network, cfg *Config) p2p.Network, names ...string) (*p2p.MemNetwork, []*Node, string) {
	t.Helper()
	mn := p2p.NewMemNetwork()
	var ns []*Node
	for _, name := range names {
		mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Home: t.TempDir(), Name: name, Logger: testLogger().With("node", name)}
		testTiming(&cfg)
		cfg.Network = setup(name, mnode, &cfg)
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			n.Close()
			mnode.Close()
		})
		ns = append(ns, n)
	}
	ctx := ctxT(t, 30*time.Second)
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			if err := ns[i].Connect(ctx, ns[j].AddrInfo()); err != nil {
				t.Fatal(err)
			}
		}
	}
	gi, err := ns[0].CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns[1:] {
		inv, err := ns[0].Invite(ctx, gi.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Join(ctx, inv.Code); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "group formed", func() error { return sameEpoch(ns, gi.ID) })
	time.Sleep(3 * ns[0].cfg.TipInterval)
	return mn, ns, gi.ID
}

// createAndJoin has creator create group "g" and invite joiner, who joins
// (dialling the inviter from the code); it returns the group.
func createAndJoin(t *testing.T, ctx context.Context, creator, joiner *Node) api.Group {
	t.Helper()
	g, err := creator.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := creator.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := joiner.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	return g
}
