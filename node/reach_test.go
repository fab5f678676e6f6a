package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"grove/node/api"
	"grove/p2p"
)

// keepNet records the KeepConnected sets a node hands its network.
type keepNet struct {
	p2p.Network
	mu   sync.Mutex
	sets map[string][]peer.ID
	seen map[string]bool
}

func (k *keepNet) KeepConnected(set string, peers []peer.ID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sets[set] = peers
	k.seen[set] = true
}

func (k *keepNet) set(name string) ([]peer.ID, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sets[name], k.seen[name]
}

// lockedBuffer is a log sink shared by goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func groupReach(t *testing.T, n *Node, id string) api.Reach {
	t.Helper()
	gs, err := n.Groups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == id {
			return g.Reach
		}
	}
	t.Fatalf("group %s not listed", id)
	return api.Reach{}
}

// TestReachCutOffAndBack: a member cut off from the only other member is
// shown so (since when, how many messages wait), its sends say Queued, the
// transitions are logged once each and the reconnection is counted; the
// network is asked to keep the other member connected.
func TestReachCutOffAndBack(t *testing.T) {
	logs := &lockedBuffer{}
	nets := map[string]*keepNet{}
	var mems []*p2p.MemNode
	_, ns, g := wrappedMemGroup(t, func(name string, net p2p.Network, cfg *Config) p2p.Network {
		if name == "alice" {
			cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
		}
		mems = append(mems, net.(*p2p.MemNode))
		k := &keepNet{Network: net, sets: map[string][]peer.ID{}, seen: map[string]bool{}}
		nets[name] = k
		return k
	}, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)

	if r := groupReach(t, alice, g); r.Reachable != 1 || r.Others != 1 || r.CutOff() {
		t.Fatalf("connected: reach %+v, want 1 of 1", r)
	}
	if m, err := alice.Send(ctx, g, "hello"); err != nil || m.Queued {
		t.Fatalf("send while connected: %+v, %v", m, err)
	}
	if got, _ := nets["alice"].set(g); len(got) != 1 || got[0] != bob.PeerID() {
		t.Fatalf("alice keeps %v connected, want [bob]", got)
	}

	before := time.Now()
	mems[0].Disconnect(bob.PeerID())
	eventually(t, 5*time.Second, "alice cut off", func() error {
		if r := groupReach(t, alice, g); !r.CutOff() {
			return fmt.Errorf("reach %+v", r)
		}
		return nil
	})
	for _, text := range []string{"one", "two"} {
		m, err := alice.Send(ctx, g, text)
		if err != nil || !m.Queued {
			t.Fatalf("send while cut off: %+v, %v; want queued", m, err)
		}
	}
	r := groupReach(t, alice, g)
	if r.CutOffSince.Before(before.Add(-time.Second)) || r.Waiting < 2 {
		t.Fatalf("cut off: reach %+v, want since about %v and 2 waiting", r, before)
	}
	if m := alice.ReachMetrics(); m.CutOffGroups != 1 {
		t.Fatalf("metrics %+v, want 1 group cut off", m)
	}

	if err := alice.Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "alice reaches bob again", func() error {
		if r := groupReach(t, alice, g); r.Reachable != 1 || r.Reconnects != 1 {
			return fmt.Errorf("reach %+v", r)
		}
		return nil
	})
	if m := alice.ReachMetrics(); m.CutOffGroups != 0 || m.Reconnects != 1 {
		t.Fatalf("metrics %+v, want none cut off, 1 reconnect", m)
	}
	if n := logs.count("no member of the group reachable"); n != 1 {
		t.Errorf("cut-off logged %d times, want once", n)
	}
	if n := logs.count("a member of the group is reachable again"); n != 1 {
		t.Errorf("reconnection logged %d times, want once", n)
	}
	eventually(t, 10*time.Second, "queued messages reach bob", func() error { return hasTexts(bob, g, "one", "two") })

	// A group left: its set is released.
	solo, err := alice.CreateGroup(ctx, "solo")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Leave(ctx, solo.ID); err != nil {
		t.Fatal(err)
	}
	if got, seen := nets["alice"].set(solo.ID); !seen || len(got) != 0 {
		t.Fatalf("left group's set: %v (seen %v), want released", got, seen)
	}
}

// TestChangeDoneWithEpoch: rotate and remove requested through
// RequestChange are reported done with the epoch that carries them.
func TestChangeDoneWithEpoch(t *testing.T) {
	_, ns, g := wrappedMemGroup(t, func(_ string, net p2p.Network, _ *Config) p2p.Network { return net }, "alice", "bob", "carol")
	alice := ns[0]
	ctx := ctxT(t, 60*time.Second)
	var before uint64
	for _, gi := range must1(alice.Groups(ctx)) {
		before = gi.Epoch
	}
	c, err := alice.RequestChange(ctx, api.ChangeRequest{Group: g, Kind: api.ChangeRotate})
	if err != nil || c.State != api.ChangeRequested || c.ID == "" {
		t.Fatalf("request: %+v, %v", c, err)
	}
	c, err = alice.AwaitChange(ctx, g, c.ID, 20*time.Second)
	if err != nil || c.State != api.ChangeDone || c.Epoch <= before {
		t.Fatalf("rotate: %+v, %v; want done after epoch %d", c, err, before)
	}
	c, err = alice.RequestChange(ctx, api.ChangeRequest{Group: g, Kind: api.ChangeRemove, Member: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	c, err = alice.AwaitChange(ctx, g, c.ID, 20*time.Second)
	if err != nil || c.State != api.ChangeDone || c.Epoch == 0 {
		t.Fatalf("remove: %+v, %v; want done", c, err)
	}
	if n := memberCount(alice, g); n != 2 {
		t.Fatalf("%d members after the removal, want 2", n)
	}
	if _, err := alice.AwaitChange(ctx, g, strings.Repeat("ab", 16), 0); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown change: %v, want not found", err)
	}
}

// TestChangeNotConfirmedWhileCutOff: a rotation while no member is
// reachable is not reported done; AwaitChange says what it waits for.
func TestChangeNotConfirmedWhileCutOff(t *testing.T) {
	var mems []*p2p.MemNode
	_, ns, g := wrappedMemGroup(t, func(_ string, net p2p.Network, _ *Config) p2p.Network {
		mems = append(mems, net.(*p2p.MemNode))
		return net
	}, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	mems[0].Disconnect(bob.PeerID())
	eventually(t, 5*time.Second, "alice cut off", func() error {
		if r := groupReach(t, alice, g); !r.CutOff() {
			return fmt.Errorf("reach %+v", r)
		}
		return nil
	})
	c, err := alice.RequestChange(ctx, api.ChangeRequest{Group: g, Kind: api.ChangeRotate})
	if err != nil {
		t.Fatal(err)
	}
	c, err = alice.AwaitChange(ctx, g, c.ID, 2*time.Second)
	if err != nil || c.State == api.ChangeDone || c.Waiting == "" {
		t.Fatalf("await while cut off: %+v, %v; want not done, with what it waits for", c, err)
	}
}

func must1[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
