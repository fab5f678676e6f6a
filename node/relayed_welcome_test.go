package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"grove/mls"
	"grove/node/api"
	"grove/p2p"
)

// welcomeLossNet loses, while lose is set, every application message its
// node publishes (a relayed Welcome is one; Commits and tips still go out)
// and serves no sync, so that nothing but a retry can bring what was lost.
type welcomeLossNet struct {
	p2p.Network
	lose    atomic.Bool
	dropped atomic.Int32
	// open unwraps what alice publishes (her actor calls Publish, and
	// open, on its own goroutine); set before lose.
	open func(env []byte) []byte
}

func (w *welcomeLossNet) Publish(ctx context.Context, g p2p.GroupID, data []byte) error {
	if w.lose.Load() {
		if m, err := mls.UnmarshalMLSMessage(w.open(data)); err == nil && m.WireFormat == mls.WireFormatPrivateMessage &&
			m.PrivateMessage.ContentType == mls.ContentTypeApplication {
			w.dropped.Add(1)
			return nil
		}
	}
	return w.Network.Publish(ctx, g, data)
}

func (w *welcomeLossNet) Serve(proto protocol.ID, h p2p.StreamHandler) {
	w.Network.Serve(proto, func(ctx context.Context, s p2p.Stream) {
		if proto == p2p.ProtocolSync && w.lose.Load() {
			s.Reset()
			return
		}
		h(ctx, s)
	})
}

// TestLostRelayedWelcomeRecoveredByRetry: carol redeems an invite from bob,
// who is not an admin; alice commits the Add and relays the Welcome inside
// the group, which has no acknowledgement, and here it is lost. Carol's
// join times out; her retry with the same code (the only recovery there
// is) gets her in, once, and she can talk.
func TestLostRelayedWelcomeRecoveredByRetry(t *testing.T) {
	checkLeaks(t)
	var wl *welcomeLossNet
	mn, ns, g := wrappedMemGroup(t, func(name string, net p2p.Network, _ *Config) p2p.Network {
		if name != "alice" {
			return net
		}
		wl = &welcomeLossNet{Network: net}
		return wl
	}, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 60*time.Second)
	carol := memNode(t, mn, "carol")
	for _, n := range ns {
		if err := carol.Connect(ctx, n.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := bob.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := alice.lookup(g); err == nil {
		wl.open = func(env []byte) []byte {
			sealed, err := a.wire.open(env)
			if err != nil {
				return nil
			}
			_, _, kind, body, err := a.openSealed(sealed)
			if err != nil || kind != sealedMLS {
				return nil
			}
			return body
		}
	} else {
		t.Fatal(err)
	}
	wl.lose.Store(true)
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = carol.Join(short, inv.Code)
	cancel()
	if !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("first join: got %v, want a timeout", err)
	}
	if wl.dropped.Load() == 0 {
		t.Fatal("no relayed Welcome was lost: the test lost its point")
	}

	wl.lose.Store(false)
	if _, err := carol.Join(ctx, inv.Code); err != nil {
		t.Fatalf("retry with the same code: %v", err)
	}
	all := []*Node{alice, bob, carol}
	eventually(t, 20*time.Second, "carol in once", func() error {
		for _, n := range all {
			if c := memberCount(n, g); c != 3 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(all, g)
	})
	if _, err := carol.Send(ctx, g, "made it"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{alice, bob} {
		eventually(t, 10*time.Second, "carol's message at "+n.self.Name, func() error { return hasTexts(n, g, "made it") })
	}
}
