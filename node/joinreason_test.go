package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
)

// TestJoinResponseReasonCode: the reason code is an optional last field:
// a response without it (as inviters before it sent) decodes, a zero or
// unknown code is refused, and a coded response round-trips.
func TestJoinResponseReasonCode(t *testing.T) {
	old := (&joinResponse{Status: joinFailed, Reason: "x"}).marshal()
	if r, err := unmarshalJoinResponse(old); err != nil || r.Code != joinReasonNone {
		t.Fatalf("uncoded response: %+v, %v", r, err)
	}
	coded := (&joinResponse{Status: joinFailed, Reason: "x", Code: joinReasonRateLimited}).marshal()
	if r, err := unmarshalJoinResponse(coded); err != nil || r.Code != joinReasonRateLimited {
		t.Fatalf("coded response: %+v, %v", r, err)
	}
	for _, bad := range [][]byte{append(bytes.Clone(old), 0), append(bytes.Clone(old), byte(joinReasonMax+1))} {
		if _, err := unmarshalJoinResponse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("code byte %d accepted", bad[len(bad)-1])
		}
	}
}

// fakeInviter serves /grove/join/1 on a MemNetwork node with the given
// answers, and returns an invite code naming it.
func fakeInviter(t *testing.T, mn *p2p.MemNetwork, answers ...*joinResponse) string {
	t.Helper()
	mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mnode.Close() })
	mnode.Serve(p2p.ProtocolJoin, func(ctx context.Context, s p2p.Stream) {
		if _, err := s.Recv(); err != nil {
			return
		}
		for _, a := range answers {
			s.Send(a.marshal())
		}
		if last := answers[len(answers)-1]; last.Status == joinWaiting {
			// Keep the joiner waiting, as an inviter does.
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(300 * time.Millisecond):
				}
				if s.Send(last.marshal()) != nil {
					return
				}
			}
		}
		s.CloseWrite()
		<-ctx.Done()
	})
	iv := &invite{Group: []byte("0123456789abcdef"), Expires: time.Now().Add(time.Hour).Truncate(time.Second), Peer: []byte(mnode.ID())}
	rand.Read(iv.Secret[:])
	return iv.encode()
}

// TestJoinSaysWhy: each way an inviter turns a joiner away is said in the
// user's terms, and waiting keepalives become progress reports.
func TestJoinSaysWhy(t *testing.T) {
	mn := p2p.NewMemNetwork()
	carol := memNode(t, mn, "carol")
	for _, tc := range []struct {
		name    string
		answers []*joinResponse
		want    string
	}{
		{"leaving", []*joinResponse{{Status: joinFailed, Reason: "gone", Code: joinReasonInviterLeaving}}, "the inviter is leaving or being removed from the group"},
		{"rate limited", []*joinResponse{{Status: joinRejected, Reason: "slow down", Code: joinReasonRateLimited}}, "turning join attempts away for now"},
		{"no admin", []*joinResponse{{Status: joinFailed, Reason: "none", Code: joinReasonNoAdmin}}, "no admin of the group answered"},
		{"uncoded", []*joinResponse{{Status: joinRejected, Reason: "invite code expired"}}, "invite refused: invite code expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := carol.Join(ctxT(t, 10*time.Second), fakeInviter(t, mn, tc.answers...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("join: %v, want %q", err, tc.want)
			}
		})
	}

	t.Run("waiting for an admin", func(t *testing.T) {
		evs, err := carol.Subscribe(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		code := fakeInviter(t, mn, &joinResponse{Status: joinWaiting, Reason: joinWaitNoAdmin})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err = carol.Join(ctx, code)
		if !errors.Is(err, api.ErrTimeout) || !strings.Contains(err.Error(), "no admin of the group was online") {
			t.Fatalf("join: %v, want a timeout naming the missing admin", err)
		}
		var progress []string
		for len(evs) > 0 {
			if ev := <-evs; ev.Kind == api.EventJoinProgress {
				progress = append(progress, ev.Detail)
			}
		}
		if !strings.Contains(strings.Join(progress, "\n"), joinWaitNoAdmin+" (") {
			t.Fatalf("progress %q, want the inviter's wait with the time so far", progress)
		}
	})

	t.Run("inviter unreachable", func(t *testing.T) {
		iv := &invite{Group: []byte("0123456789abcdef"), Expires: time.Now().Add(time.Hour).Truncate(time.Second),
			Peer: []byte(memNode(t, p2p.NewMemNetwork(), "elsewhere").PeerID()), Addrs: []string{"/ip4/127.0.0.1/tcp/9"}}
		_, err := carol.Join(ctxT(t, 10*time.Second), iv.encode())
		want := "could not reach the inviter's device at /ip4/127.0.0.1/tcp/9: is its daemon running and reachable?"
		if err == nil || err.Error() != want {
			t.Fatalf("join: %v, want %q", err, want)
		}
	})
}

// TestJoinNoAdminOnline: a member that is not an admin, cut off
// from the only admin, tells its joiner that no admin is online, and the
// joiner's timeout says so.
func TestJoinNoAdminOnline(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a join keepalive")
	}
	var mems []*p2p.MemNode
	mn, ns, g := wrappedMemGroup(t, func(_ string, net p2p.Network, _ *Config) p2p.Network {
		mems = append(mems, net.(*p2p.MemNode))
		return net
	}, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 30*time.Second)
	inv, err := bob.Invite(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	mems[1].Disconnect(alice.PeerID())
	carol := memNode(t, mn, "carol")
	jctx, cancel := context.WithTimeout(ctx, joinKeepalive+2*time.Second)
	defer cancel()
	_, err = carol.Join(jctx, inv.Code)
	if !errors.Is(err, api.ErrTimeout) || !strings.Contains(err.Error(), "no admin of the group was online") {
		t.Fatalf("join: %v, want a timeout naming the missing admin", err)
	}
}
