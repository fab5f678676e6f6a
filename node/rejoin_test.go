package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/node/api"
	"grove/p2p"
)

// lostWelcomeNet is a joiner's network on which, while lose is set, the
// inviter's Welcome frame on a join stream is read off the wire and
// thrown away, and the stream then breaks: the inviter's write succeeded
// (it marks the Welcome handed over), the joiner never sees it. This is a
// link that dies while the Welcome is in flight.
type lostWelcomeNet struct {
	p2p.Network
	lose    atomic.Bool
	dropped atomic.Int32
}

func (w *lostWelcomeNet) OpenStream(ctx context.Context, p peer.ID, proto protocol.ID) (p2p.Stream, error) {
	s, err := w.Network.OpenStream(ctx, p, proto)
	if err != nil || proto != p2p.ProtocolJoin || !w.lose.Load() {
		return s, err
	}
	return &lostWelcomeStream{Stream: s, net: w}, nil
}

type lostWelcomeStream struct {
	p2p.Stream
	net *lostWelcomeNet
}

var errLinkDown = errors.New("test: link down")

func (s *lostWelcomeStream) Recv() ([]byte, error) {
	frame, err := s.Stream.Recv()
	if err != nil {
		return frame, err
	}
	if resp, err := unmarshalJoinResponse(frame); err == nil && resp.Status == joinOK {
		s.net.dropped.Add(1)
		s.Stream.Reset()
		return nil, errLinkDown
	}
	return frame, nil
}

// inviteSpent reports whether n has marked the invite of code delivered.
func inviteSpent(t *testing.T, n *Node, code string) bool {
	t.Helper()
	iv, err := decodeInvite(code)
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	pi := n.loadInvite(iv.Secret)
	return pi != nil && pi.delivered
}

// TestRejoinAfterDeliveredWelcomeLost: the chaos testnet's failure. Alice
// (an admin) invites bob; his first attempt gets the Add committed and the
// Welcome written to the join stream, so alice counts it handed over, but
// the link dies and bob never reads it. Bob retries with the same code
// from the same device: it used to be refused ("invite code already
// used"), leaving every member with a leaf nobody will ever use. The retry
// must get him in, replacing that leaf, so the group ends with its real
// members. Somebody else still cannot use the code.
func TestRejoinAfterDeliveredWelcomeLost(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	alice, carol := memNode(t, mn, "alice"), memNode(t, mn, "carol")
	var lw *lostWelcomeNet
	bob := memNodeWith(t, mn, "bob", func(c *Config) {
		lw = &lostWelcomeNet{Network: c.Network}
		c.Network = lw
	})
	dave := memNode(t, mn, "dave")
	ctx := ctxT(t, 60*time.Second)
	for _, n := range []*Node{bob, carol, dave} {
		if err := n.Connect(ctx, alice.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.Connect(ctx, carol.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	g := createAndJoin(t, ctx, alice, carol)
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}

	lw.lose.Store(true)
	if _, err := bob.Join(ctx, inv.Code); err == nil {
		t.Fatal("first join succeeded: the Welcome was not lost")
	}
	lw.lose.Store(false)
	if lw.dropped.Load() != 1 {
		t.Fatalf("%d Welcomes dropped, want 1: the test lost its point", lw.dropped.Load())
	}
	eventually(t, 10*time.Second, "the lost Welcome counted as handed over", func() error {
		if !inviteSpent(t, alice, inv.Code) {
			return errors.New("alice has not marked the invite delivered")
		}
		return nil
	})
	for _, n := range []*Node{alice, carol} {
		if c := memberCount(n, g.ID); c != 3 {
			t.Fatalf("%s sees %d members after the lost Welcome, want 3 (bob's unused leaf)", n.self.Name, c)
		}
	}

	// Another device cannot use the code.
	if _, err := dave.Join(ctx, inv.Code); !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("dave with bob's code: got %v, want already used", err)
	}
	// Bob's retry with the same code gets him in.
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatalf("retry with the same code after a lost Welcome: %v", err)
	}
	all := []*Node{alice, bob, carol}
	eventually(t, 20*time.Second, "bob in once", func() error {
		for _, n := range all {
			if c := memberCount(n, g.ID); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(all, g.ID)
	})
	if _, err := bob.Send(ctx, g.ID, "back in"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{alice, carol} {
		eventually(t, 10*time.Second, "bob's message at "+n.self.Name, func() error { return hasTexts(n, g.ID, "back in") })
	}
}
