package node

import (
	"testing"
	"time"

	"grove/node/api"
)

// TestLinkThenRestart: the CLI's path, init --link (start, link, stop at
// once, the joins cut short) then up (the joins retried): the phone gets
// into both groups and what it sends reaches everyone.
func TestLinkThenRestart(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	laptop, err := realNodeWith(t, t.TempDir(), "alice", func(c *Config) { c.DeviceName = "laptop" })
	if err != nil {
		t.Fatal(err)
	}
	defer laptop.Close()
	bob := realNode(t, t.TempDir(), "bob")
	defer bob.Close()
	carol := realNode(t, t.TempDir(), "carol")
	defer carol.Close()
	var groups []api.Group
	for _, name := range []string{"team", "family"} {
		g, _ := laptop.CreateGroup(ctx, name)
		for _, n := range []*Node{bob, carol} {
			inv, _ := laptop.Invite(ctx, g.ID)
			if _, err := n.Join(ctx, inv.Code); err != nil {
				t.Fatal(err)
			}
		}
		groups = append(groups, g)
	}
	code, _ := laptop.DeviceLink(ctx)
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
