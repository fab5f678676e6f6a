package node

import (
	"context"
	"testing"
	"time"

	"grove/node/api"
)

// TestLinkThenRestart: the CLI's path, init --link (start, link, stop at
// once, the joins cut short) then up (the joins retried): the phone gets
// into both groups and what it sends reaches everyone.
func TestLinkThenRestart(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	laptop, bob, carol, groups := laptopBobCarol(t, ctx)
	code, err := laptop.DeviceLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	phone, err := realNodeWith(t, home, "", func(c *Config) { c.Link, c.DeviceName = code.Code, "phone" })
	if err != nil {
		t.Fatal(err)
	}
	phone.Close()
	if phone, err = realNodeWith(t, home, "", nil); err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	for _, g := range groups {
		for _, n := range []*Node{laptop, bob, carol, phone} {
			eventually(t, 60*time.Second, "phone in "+g.Name, func() error {
				return hasDevices(n, g.ID, "alice (laptop)", "alice (phone)", "bob (device)", "carol (device)")
			})
		}
	}
	for _, g := range groups {
		for _, n := range []*Node{laptop, phone, bob} {
			// The device name from the identity: the restarted phone's
			// config no longer names it.
			if _, err := n.Send(ctx, g.ID, "from "+n.self.Name+" "+n.self.deviceName()+" in "+g.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, g := range groups {
		for _, n := range []*Node{bob, carol, phone, laptop} {
			eventually(t, 20*time.Second, n.self.Name+" "+n.self.deviceName()+" reads all in "+g.Name, func() error {
				return hasTexts(n, g.ID, "from alice laptop in "+g.Name, "from alice phone in "+g.Name, "from bob device in "+g.Name)
			})
		}
	}
}

// laptopBobCarol starts alice's laptop (the admin), bob and carol on real
// sockets and puts all three in two groups, "team" and "family".
func laptopBobCarol(t *testing.T, ctx context.Context) (laptop, bob, carol *Node, groups []api.Group) {
	t.Helper()
	laptop, err := realNodeWith(t, t.TempDir(), "alice", func(c *Config) { c.DeviceName = "laptop" })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { laptop.Close() })
	bob = realNode(t, t.TempDir(), "bob")
	t.Cleanup(func() { bob.Close() })
	carol = realNode(t, t.TempDir(), "carol")
	t.Cleanup(func() { carol.Close() })
	for _, name := range []string{"team", "family"} {
		g, err := laptop.CreateGroup(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []*Node{bob, carol} {
			inv, err := laptop.Invite(ctx, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.Join(ctx, inv.Code); err != nil {
				t.Fatal(err)
			}
		}
		groups = append(groups, g)
	}
	return laptop, bob, carol, groups
}
