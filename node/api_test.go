package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
)

func TestLeaveIsCommittedByAdmin(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 20*time.Second)
	if err := bob.Leave(ctx, g); err != nil {
		t.Fatal(err)
	}
	if gs, _ := bob.Groups(ctx); len(gs) != 0 {
		t.Fatalf("bob still lists %d groups", len(gs))
	}
	if _, err := bob.Log(ctx, g, 10); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("bob's log after leave: %v", err)
	}
	eventually(t, 10*time.Second, "bob removed by alice", func() error {
		for _, n := range []*Node{alice, carol} {
			if c := memberCount(n, g); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch([]*Node{alice, carol}, g)
	})
	// Leaving the same group again is a clear error.
	if err := bob.Leave(ctx, g); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("second leave: %v", err)
	}
}

func TestStatusMembersPeersExport(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob")
	alice, bob := ns[0], ns[1]
	ctx := ctxT(t, 20*time.Second)
	st, err := alice.Status(ctx)
	if err != nil || st.Name != "alice" || st.PeerID != alice.PeerID().String() || st.Groups != 1 || st.Peers != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
	ms, err := bob.Members(ctx, "g")
	if err != nil || len(ms) != 2 {
		t.Fatalf("members %+v %v", ms, err)
	}
	for _, m := range ms {
		if m.Name == "alice" && (!m.Admin || m.Self) || m.Name == "bob" && (m.Admin || !m.Self) {
			t.Fatalf("member flags wrong: %+v", m)
		}
		if len(m.Fingerprint) != 49 {
			t.Fatalf("fingerprint %q", m.Fingerprint)
		}
	}
	if ms[0].Name == "alice" && ms[0].Fingerprint != st.Fingerprint {
		t.Fatalf("alice's fingerprint differs between status and members")
	}
	ps, err := alice.Peers(ctx)
	if err != nil || len(ps) != 1 || ps[0].Name != "bob" || len(ps[0].Groups) != 1 {
		t.Fatalf("peers %+v %v", ps, err)
	}
	for i := range 5 {
		if _, err := bob.Send(ctx, g, fmt.Sprintf("export %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "delivered", func() error { return hasTexts(alice, g, "export 0", "export 4") })
	var got []api.Message
	if err := alice.Export(ctx, g, time.Time{}, func(m api.Message) error { got = append(got, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0].Text != "export 0" || got[0].Sender != "bob" || got[0].Own {
		t.Fatalf("export %+v", got)
	}
	if _, err := alice.Send(ctx, "nope", "x"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
	if _, err := alice.Send(ctx, g, ""); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("empty text: %v", err)
	}
	if m := alice.Metrics(); m.MessagesIn < 5 || m.Groups != 1 {
		t.Fatalf("metrics %+v", m)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Home: "x", Name: "a\nb"}, {Home: "x", TipInterval: -1}, {Home: "x", CommitRate: 300}, {Home: "x", CipherSuite: 0x7777}} {
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v", c, err)
		}
	}
	// A device keeps its name; a different one later is refused.
	mn := p2p.NewMemNetwork()
	home := t.TempDir()
	for i, name := range []string{"alice", "", "mallory"} {
		mnode, _ := mn.NewNode(p2p.Config{Logger: testLogger()})
		n, err := New(Config{Home: home, Name: name, Network: mnode, Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		err = n.Start(context.Background())
		if i < 2 && err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if i == 2 && !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("rename: %v", err)
		}
		if i == 1 && n.self.Name != "alice" {
			t.Fatalf("name %q", n.self.Name)
		}
		n.Close()
		mnode.Close()
	}
}
