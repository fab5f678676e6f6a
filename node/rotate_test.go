package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"grove/p2p"
)

// leafKeys returns the encryption key of each member's leaf in n's head
// epoch of group, by display name.
func leafKeys(t *testing.T, n *Node, group string) map[string][]byte {
	t.Helper()
	a, err := n.lookup(group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	err = a.do(context.Background(), func() error {
		_, g := a.head()
		if g == nil {
			return fmt.Errorf("no head")
		}
		for _, m := range g.Members() {
			id, err := parseIdentity(m.Identity)
			if err != nil {
				return err
			}
			out[id.Name] = bytes.Clone(m.EncryptionKey)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAutoRotateKeepsJoinsWorking: with the default schedule every member
// updates its own leaf on its own, and a new member can still join after
// the 90-day lifetime of the KeyPackages the first members joined with
// (91 days), and long after (400 days). The clock is fake and shared.
func TestAutoRotateKeepsJoinsWorking(t *testing.T) {
	checkLeaks(t)
	mn := p2p.NewMemNetwork()
	clock := &fakeClock{t: time.Now()}
	// The fake clock runs at the real rate between the jumps, so that
	// commitorder's timers (measured on it) fire.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				clock.Advance(10 * time.Millisecond)
			}
		}
	}()
	defer func() { close(stop); <-stopped }()
	alice := memNodeClock(t, mn, "alice", clock)
	bob := memNodeClock(t, mn, "bob", clock)
	ctx := ctxT(t, 120*time.Second)
	if err := bob.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	grp, err := alice.CreateGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	join := func(n *Node) {
		t.Helper()
		inv, err := alice.Invite(ctx, grp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Join(ctx, inv.Code); err != nil {
			t.Fatalf("%s joins: %v", n.cfg.Name, err)
		}
	}
	join(bob)
	members := []*Node{alice, bob}
	// waitRotated advances the clock by d, then waits until alice's and
	// every member's view shows each member's leaf changed.
	waitRotated := func(d time.Duration) {
		t.Helper()
		before := leafKeys(t, alice, grp.ID)
		clock.Advance(d)
		eventually(t, 60*time.Second, "every member rotated", func() error {
			for _, n := range members {
				now := leafKeys(t, n, grp.ID)
				if len(now) != len(members) {
					return fmt.Errorf("%s sees %d members", n.cfg.Name, len(now))
				}
				for name, k := range before {
					if bytes.Equal(now[name], k) {
						return fmt.Errorf("%s sees %s's leaf unchanged", n.cfg.Name, name)
					}
				}
			}
			return nil
		})
	}
	waitRotated(91 * 24 * time.Hour)
	carol := memNodeClock(t, mn, "carol", clock)
	if err := carol.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	join(carol)
	members = append(members, carol)
	eventually(t, 20*time.Second, "carol in", func() error {
		for _, n := range members {
			if c := memberCount(n, grp.ID); c != 3 {
				return fmt.Errorf("%s sees %d members", n.cfg.Name, c)
			}
		}
		return nil
	})
	waitRotated(309 * 24 * time.Hour) // day 400
	// The schedule is saved for the next start: the last rotation is no
	// older than the jump to day 400.
	day400 := clock.Now().Add(-time.Minute)
	for _, n := range members {
		v, err := n.db.Setting(rotatedSetting(grp.ID))
		if err != nil || len(v) != 8 {
			t.Fatalf("%s's rotation time: %x, %v", n.cfg.Name, v, err)
		}
		if at := time.Unix(0, int64(binary.BigEndian.Uint64(v))); at.Before(day400.Add(-time.Hour)) {
			t.Fatalf("%s's saved rotation time %v is before day 400 (%v)", n.cfg.Name, at, day400)
		}
	}
	dave := memNodeClock(t, mn, "dave", clock)
	if err := dave.Connect(ctx, alice.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	join(dave)
	eventually(t, 20*time.Second, "dave in", func() error {
		if c := memberCount(dave, grp.ID); c != 4 {
			return fmt.Errorf("dave sees %d members", c)
		}
		return nil
	})
}
