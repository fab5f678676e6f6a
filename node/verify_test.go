package node

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"grove/node/api"
	"grove/p2p"
)

// TestVerifyPoolIsolationAndOrder: while the signature checks of one
// group's messages are stuck (every pool worker and that group's actor
// wait in them), another group's message is still delivered; once they
// go on, finishing in a scrambled order, the stuck group's messages are
// applied in the order they arrived.
func TestVerifyPoolIsolationAndOrder(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	alice, bob := memNode(t, mn, "alice"), memNode(t, mn, "bob")
	ctx := ctxT(t, 60*time.Second)
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	group := func(name string) string {
		g, err := alice.CreateGroup(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := alice.Invite(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Join(ctx, inv.Code); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, name+" formed", func() error { return sameEpoch([]*Node{alice, bob}, g.ID) })
		return g.ID
	}
	busy, quiet := group("busy"), group("quiet")
	time.Sleep(3 * alice.cfg.TipInterval) // meshes formed

	events, err := bob.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	released := false
	release := func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(release) // before the nodes close: they wait for their actors
	var stuck, quietChecks atomic.Int32
	hook := func(g []byte) {
		if hex.EncodeToString(g) == quiet {
			quietChecks.Add(1)
		}
		if hex.EncodeToString(g) != busy {
			return
		}
		stuck.Add(1)
		<-gate
		// Checks finish in another order than they started.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	}
	bob.testingOnlyVerifyHook.Store(&hook)

	const n = 20
	var want []string
	for i := range n {
		txt := fmt.Sprintf("busy %02d", i)
		want = append(want, txt)
		if _, err := alice.Send(ctx, busy, txt); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "busy group's checks stuck", func() error {
		if stuck.Load() == 0 {
			return fmt.Errorf("no check started")
		}
		return nil
	})
	if _, err := alice.Send(ctx, quiet, "quiet 00"); err != nil {
		t.Fatal(err)
	}
	// The quiet group's check runs (on its own actor, no worker being
	// free) while the busy group's are stuck: it waits behind none of
	// them. (Its message could also come by a sync, which takes no
	// check: hence this rather than the delivery alone.)
	eventually(t, 10*time.Second, "the quiet group's check", func() error {
		if quietChecks.Load() == 0 {
			return fmt.Errorf("not run")
		}
		return nil
	})
	var got []string
	next := func(what string, d time.Duration) api.Event {
		t.Helper()
		timeout := time.After(d)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("events closed")
				}
				if ev.Kind == api.EventMessage && ev.Message != nil {
					return ev
				}
			case <-timeout:
				t.Fatalf("waiting for %s; busy delivered: %q", what, got)
			}
		}
	}
	for {
		ev := next("the quiet group's message", 15*time.Second)
		if ev.Group == busy {
			// Only by a sync, which the stuck actor cannot take.
			got = append(got, ev.Message.Text)
		}
		if ev.Group == quiet && ev.Message.Text == "quiet 00" {
			break
		}
	}
	if len(got) > 0 {
		t.Fatalf("busy messages %q delivered while their checks were stuck", got)
	}
	release()
	for len(got) < n {
		if ev := next("the busy group's messages", 30*time.Second); ev.Group == busy {
			got = append(got, ev.Message.Text)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("busy messages applied out of order:\n got %q\nwant %q", got, want)
	}
	if c := stuck.Load(); c < n {
		t.Fatalf("%d of %d busy messages went through the pipeline's check", c, n)
	}
}

// A tip the pool found good vouches only for a tip with the same signer,
// signature and signed bytes; any other takes takeTip's own check.
func TestTipCheckedOnlyForTheSameTip(t *testing.T) {
	good := &tip{Version: tipV3, Group: []byte("g"), Time: 7, Epoch: 3, SigKey: []byte("key"), Signature: []byte("sig")}
	for _, c := range []struct {
		name string
		ok   bool
		edit func(*tip)
	}{
		{"same", true, func(*tip) {}},
		{"other epoch", false, func(x *tip) { x.Epoch++ }},
		{"other time", false, func(x *tip) { x.Time++ }},
		{"other key", false, func(x *tip) { x.SigKey = []byte("kez") }},
		{"other signature", false, func(x *tip) { x.Signature = []byte("siG") }},
	} {
		x := *good
		c.edit(&x)
		a := &groupActor{prepared: &preparedMsg{tip: good, tipOK: true}}
		if got := a.tipChecked(&x); got != c.ok {
			t.Errorf("%s: tipChecked %v, want %v", c.name, got, c.ok)
		}
		a.prepared = &preparedMsg{tip: good, tipOK: false}
		if a.tipChecked(good) {
			t.Errorf("%s: a tip whose check failed counted as checked", c.name)
		}
	}
}
