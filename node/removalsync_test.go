package node

import (
	"fmt"
	"testing"
	"time"

	"grove/node/api"
)

// TestRemovedWhileCutOffLearnsIt: carol is cut off; alice removes her,
// then alice and bob chat and rotate twice. When carol is back she must
// end removed (not active for ever, sending into epochs nobody reads),
// without reading anything sent after her removal; alice and bob go on.
func TestRemovedWhileCutOffLearnsIt(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 60*time.Second)
	time.Sleep(3 * carol.cfg.TipInterval)
	const before = "before carol was cut off"
	if _, err := bob.Send(ctx, g, before); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "carol reads bob", func() error { return hasTexts(carol, g, before) })
	isolate(carol, alice, bob)
	e0 := groupEpoch(t, alice, g)
	// Sent in an epoch carol is still in: hers to read once she is back.
	const away = "while carol was away, before her removal"
	if _, err := bob.Send(ctx, g, away); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "alice reads bob", func() error { return hasTexts(alice, g, away) })

	if err := alice.Remove(ctx, g, "carol"); err != nil {
		t.Fatal(err)
	}
	pair := []*Node{alice, bob}
	eventually(t, 10*time.Second, "carol removed for alice and bob", func() error {
		for _, n := range pair {
			if c := memberCount(n, g); c != 2 {
				return fmt.Errorf("%s sees %d members", n.self.Name, c)
			}
		}
		return sameEpoch(pair, g)
	})
	var after []string
	for r := range 2 {
		for i := range 3 {
			text := fmt.Sprintf("after carol's removal, round %d message %d", r, i)
			after = append(after, text)
			if _, err := pair[i%2].Send(ctx, g, text); err != nil {
				t.Fatal(err)
			}
		}
		if err := pair[r%2].Rotate(ctx, g); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "rotated", func() error {
			if e := groupEpoch(t, alice, g); e != e0+2+uint64(r) {
				return fmt.Errorf("alice on epoch %d", e)
			}
			return sameEpoch(pair, g)
		})
	}
	eventually(t, 10*time.Second, "alice and bob read everything", func() error {
		for _, n := range pair {
			if err := hasTexts(n, g, after...); err != nil {
				return err
			}
		}
		return nil
	})
	// Let the removal be final everywhere (carol's old epochs deleted by
	// alice and bob), as after a long absence.
	time.Sleep(4 * alice.cfg.FinalityAge)
	if s := groupInfo(t, carol, g).State; s != api.GroupActive {
		t.Fatalf("carol, cut off, already in state %q", s)
	}

	// Carol is back.
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if err := carol.Connect(ctx, bob.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "carol sees she was removed", func() error {
		if s := groupInfo(t, carol, g).State; s != api.GroupRemoved {
			return fmt.Errorf("carol's state %q", s)
		}
		return nil
	})
	if _, err := carol.Send(ctx, g, "from a removed member"); err == nil {
		t.Fatal("carol could still send")
	}
	const later = "after carol came back"
	if _, err := alice.Send(ctx, g, later); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "bob reads alice", func() error { return hasTexts(bob, g, later) })
	time.Sleep(2 * alice.cfg.TipInterval)
	got := texts(t, carol, g)
	for _, txt := range got {
		for _, a := range append(after, later) {
			if txt == a {
				t.Fatalf("carol read %q, sent after her removal", txt)
			}
		}
	}
	if err := hasTexts(carol, g, before, away); err != nil {
		t.Fatal(err)
	}
	for _, n := range pair {
		if s := groupInfo(t, n, g).State; s != api.GroupActive || memberCount(n, g) != 2 {
			t.Fatalf("%s: state %q, %d members", n.self.Name, s, memberCount(n, g))
		}
	}
	if err := sameEpoch(pair, g); err != nil {
		t.Fatal(err)
	}
}
