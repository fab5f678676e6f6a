package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"grove/mls"
	"grove/p2p"
)

// BenchmarkSendDeliver: one message from alice's Send to bob's view, over
// the in-memory network (everything but the wire: outbox, MLS, log, view,
// index, both actors). Compare with BenchmarkFloorMLSRoundTrip. Wall time
// is mostly fsync latency, which a shared disk makes noisy; cpu-us/op is
// the process's CPU time per message (both nodes).
func BenchmarkSendDeliver(b *testing.B) {
	mn := p2p.NewMemNetwork()
	alice := benchNode(b, mn, "alice")
	bob := benchNode(b, mn, "bob")
	ctx := context.Background()
	bob.Connect(ctx, alice.AddrInfo())
	g, _ := alice.CreateGroup(ctx, "g")
	inv, _ := alice.Invite(ctx, g.ID)
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		b.Fatal(err)
	}
	events, _ := bob.Subscribe(ctx)
	b.ResetTimer()
	c0 := cpuTime()
	defer func() { b.ReportMetric(float64((cpuTime()-c0).Microseconds())/float64(b.N), "cpu-us/op") }()
	for i := range b.N {
		if _, err := alice.Send(ctx, g.ID, fmt.Sprintf("benchmark message %d with some words", i)); err != nil {
			b.Fatal(err)
		}
		for ev := range events {
			if ev.Kind == "message" {
				break
			}
		}
	}
}

func benchNode(b *testing.B, mn *p2p.MemNetwork, name string) *Node {
	mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Home: b.TempDir(), Name: name, Network: mnode, Logger: testLogger()}
	testTiming(&cfg)
	n, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close(); mnode.Close() })
	return n
}

// BenchmarkFloorMLSRoundTrip is the floor: encrypting and decrypting one
// application message with the mls package alone.
func BenchmarkFloorMLSRoundTrip(b *testing.B) {
	ga, gb := floorGroups(b)
	p := (&appPayload{Kind: kindText, Time: time.Now(), Text: "benchmark message 1 with some words"}).marshal()
	b.ResetTimer()
	for range b.N {
		ct, err := ga.ProtectApplication(p, nil, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := gb.ProcessMessage(ct, mls.ProcessOptions{Now: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
}

// floorGroups returns the two members' states of a fresh two-member group,
// made with the mls package alone.
func floorGroups(b *testing.B) (ga, gb *mls.Group) {
	b.Helper()
	cs := DefaultCipherSuite
	s, _ := cs.Suite()
	mk := func(name string) (*mls.KeyPackageBundle, *mls.SigningKey) {
		sk, _ := s.GenerateSigningKey(rand.Reader)
		kp, err := mls.NewKeyPackage(&mls.KeyPackageParams{Suite: cs, Credential: mls.NewBasicCredential([]byte(name)), SigningKey: sk,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), Rand: rand.Reader})
		if err != nil {
			b.Fatal(err)
		}
		return kp, sk
	}
	akp, _ := mk("a")
	bkp, _ := mk("b")
	g0, err := mls.CreateGroup(&mls.CreateParams{Suite: cs, Own: akp, Rand: rand.Reader, Now: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	sc, err := g0.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: bkp.KeyPackage}}}, Now: time.Now(), Rand: rand.Reader})
	if err != nil {
		b.Fatal(err)
	}
	ga, err = sc.Merge()
	if err != nil {
		b.Fatal(err)
	}
	gb, err = mls.JoinFromWelcome(&mls.JoinParams{Welcome: sc.Welcome, KeyPackage: bkp, Now: time.Now()})
	if err != nil {
		b.Fatal(err)
	}
	return ga, gb
}
