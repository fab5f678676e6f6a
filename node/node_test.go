package node

import (
	"context"
	"testing"
	"time"

	"grove/p2p"
)

func TestMemChatTwoNodes(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	alice := memNode(t, mn, "alice")
	bob := memNode(t, mn, "bob")
	ctx := ctxT(t, 20*time.Second)
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := alice.Invite(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	bg, err := bob.Join(ctx, inv.Code)
	if err != nil {
		t.Fatal(err)
	}
	if bg.ID != g.ID || bg.Members != 2 || bg.Name != "team" {
		t.Fatalf("bob joined %+v", bg)
	}
	if _, err := alice.Send(ctx, g.ID, "hello bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "team", "hi alice"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{alice, bob} {
		eventually(t, 10*time.Second, "both messages", func() error { return hasTexts(n, g.ID, "hello bob", "hi alice") })
	}
	// The code is one-time.
	if _, err := bob.Join(context.Background(), inv.Code); err == nil {
		t.Fatal("second join with the same code succeeded")
	}
}
