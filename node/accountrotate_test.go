package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"grove/account"
	"grove/commitorder"
	"grove/mls"
	"grove/p2p"
)

// groupRotationsOf reads the rotations in n's head epoch of group.
func groupRotationsOf(t *testing.T, n *Node, group string) *account.Rotations {
	t.Helper()
	a, err := n.lookup(group)
	if err != nil {
		t.Fatal(err)
	}
	var rots *account.Rotations
	a.do(context.Background(), func() error {
		_, g := a.head()
		if g != nil {
			rots = groupRotations(g)
		}
		return nil
	})
	if rots == nil {
		return &account.Rotations{}
	}
	return rots
}

// rotationFrame is what /grove/account-rotate/1 carries: the rotation and
// a key (nil for none).
func rotationFrame(r *account.Rotation, seed []byte) []byte {
	var w wbuf
	w.vec(r.Marshal())
	w.vec(seed)
	return w.b
}

// TestAccountKeyRotation: alice (laptop, the group's admin, and a linked
// phone) rotates her account key from the laptop. The phone gets the new
// key; the group's policy gets the rotation, so bob and carol read it from
// the group state. A device certificate made with the old key (its thief's
// new device) is refused everywhere: its Add is an invalid Commit for
// every member, and it is served no GroupInfo (ErrOldAccountKey). A
// tablet linked after the rotation, certified by the new key, joins and
// is shown as alice's; her devices still send and receive. A rotation
// signed by someone else than alice's key is refused, and so is the old
// key's competing rotation.
func TestAccountKeyRotation(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 120*time.Second)
	laptop, err := startNode(t, mn, "alice", func(c *Config) { c.DeviceName = "laptop" })
	if err != nil {
		t.Fatal(err)
	}
	bob, carol := memNode(t, mn, "bob"), memNode(t, mn, "carol")
	g, err := laptop.CreateGroup(ctx, "team")
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
	code, err := laptop.DeviceLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	phone, err := startNode(t, mn, "", func(c *Config) { c.Link, c.DeviceName = code.Code, "phone" })
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{laptop, phone, bob, carol} {
		eventually(t, 30*time.Second, "the phone in the group", func() error {
			return hasDevices(n, g.ID, "alice (laptop)", "alice (phone)", "bob (device)", "carol (device)")
		})
	}
	// The old key, as a thief of the laptop or of an old backup has it.
	laptop.dev.mu.Lock()
	oldKey, err := account.ParseKey(laptop.dev.key.Bytes())
	laptop.dev.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	res, err := laptop.AccountRotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Seq != 1 || res.Devices != 2 || res.Old != oldKey.Public().Fingerprint() || res.New == res.Old {
		t.Fatalf("rotation %+v (old key %s)", res, oldKey.Public().Fingerprint())
	}
	laptop.dev.mu.Lock()
	newPub := laptop.dev.key.Public()
	laptop.dev.mu.Unlock()
	eventually(t, 30*time.Second, "the phone has the new key", func() error {
		phone.dev.mu.Lock()
		defer phone.dev.mu.Unlock()
		if !phone.dev.key.Public().Equal(newPub) {
			return errors.New("the phone still holds the old key")
		}
		return nil
	})
	for _, n := range []*Node{laptop, phone, bob, carol} {
		eventually(t, 30*time.Second, "the rotation in the group's policy", func() error {
			if !groupRotationsOf(t, n, g.ID).Current(oldKey.Public()).Equal(newPub) {
				return fmt.Errorf("%s does not see the rotation in the group", n.self.Name)
			}
			return nil
		})
	}
	// The laptop's and the phone's leaves, certified by the old key, stay
	// alice's, the admin's; everyone shows them as one account.
	for _, n := range []*Node{bob, carol} {
		if err := hasDevices(n, g.ID, "alice (laptop)", "alice (phone)", "bob (device)", "carol (device)"); err != nil {
			t.Fatal(err)
		}
		ms, _ := n.Members(ctx, g.ID)
		for _, m := range ms {
			if m.Name == "alice" && (m.Account != newPub.Fingerprint() || !m.Admin) {
				t.Fatalf("%s shows alice's %s with account %s (admin %v), want %s", n.self.Name, m.Device, m.Account, m.Admin, newPub.Fingerprint())
			}
		}
	}

	// The thief certifies a device of its own with the old key.
	suite, _ := DefaultCipherSuite.Suite()
	sig, _ := suite.GenerateSigningKey(rand.Reader)
	thiefPeer := testPeerID(t)
	stolen, err := oldKey.Certify(account.Device{AccountName: "alice", Name: "thief", SignatureKey: sig.PublicKey(), Peer: []byte(thiefPeer), Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.checkCertLocally(stolen); !errors.Is(err, ErrOldAccountKey) || !errors.Is(err, account.ErrOldKey) {
		t.Fatalf("bob takes the old key's certificate: %v", err)
	}
	gid, _ := decodeHex(g.ID)
	if _, _, _, err := bob.accountGroupInfo(ctx, gid, stolen.Marshal(), thiefPeer); !errors.Is(err, ErrOldAccountKey) {
		t.Fatalf("bob serves the old key's device a GroupInfo: %v", err)
	}
	// An Add of it, committed by a client that ignores the rotation, is
	// invalid for every member.
	kp := keyPackageWith(t, memberIdentity{Name: "alice", Peer: thiefPeer, Cert: stolen}, sig)
	var rule rejectReason
	headState(t, ctx, laptop, g.ID, func(eid commitorder.EpochID, head, cp *mls.Group) {
		sc, err := cp.Commit(&mls.CommitOptions{SkipCached: true, Private: true, Proposals: []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *kp}}},
			AuthenticatedData: commitAD(eid, commitorder.ClassAdd, commitorder.MemberID(laptop.selfID)), Now: time.Now(), Rand: rand.Reader})
		if err != nil {
			t.Errorf("craft commit: %v", err)
			return
		}
		next, err := sc.Merge()
		if err != nil {
			t.Errorf("merge: %v", err)
			return
		}
		rule = commitRule(head, next, mls.MemberSender(cp.OwnLeaf()))
	})
	if rule != rejectDevice {
		t.Fatalf("commitRule of the old key's device = %q, want %q", rule, rejectDevice)
	}

	// A device linked after the rotation is certified by the new key, and
	// members take it as alice's.
	code, err = phone.DeviceLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tablet, err := startNode(t, mn, "", func(c *Config) { c.Link, c.DeviceName = code.Code, "tablet" })
	if err != nil {
		t.Fatal(err)
	}
	tablet.dev.mu.Lock()
	tabletAcct := tablet.self.Cert.Account
	tablet.dev.mu.Unlock()
	if !tabletAcct.Equal(newPub) {
		t.Fatalf("the tablet is certified by %s, want the new key %s", tabletAcct.Fingerprint(), newPub.Fingerprint())
	}
	for _, n := range []*Node{bob, carol, tablet} {
		eventually(t, 60*time.Second, "the tablet in the group", func() error {
			return hasDevices(n, g.ID, "alice (laptop)", "alice (phone)", "alice (tablet)", "bob (device)", "carol (device)")
		})
	}

	// The rotated account's devices send and receive.
	for _, s := range []struct {
		n    *Node
		text string
	}{{laptop, "from the laptop"}, {phone, "from the phone"}, {bob, "from bob"}} {
		if _, err := s.n.Send(ctx, g.ID, s.text); err != nil {
			t.Fatalf("%s: %v", s.text, err)
		}
	}
	for _, n := range []*Node{laptop, phone, bob, carol} {
		eventually(t, 30*time.Second, "messages after the rotation", func() error {
			return hasTexts(n, g.ID, "from the laptop", "from the phone", "from bob")
		})
	}

	// A device kept by the rotation (its leaf certified by the old key) is
	// revoked with the new key: members take the revocation and its
	// leaf goes.
	if _, err := laptop.DeviceRevoke(ctx, "phone"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{laptop, bob, carol} {
		eventually(t, 30*time.Second, "the phone removed", func() error {
			return hasDevices(n, g.ID, "alice (laptop)", "alice (tablet)", "bob (device)", "carol (device)")
		})
	}
	eventually(t, 20*time.Second, "bob keeps the revocation", func() error {
		if !bob.revokedIdentity(phone.selfID) {
			return errors.New("bob does not hold the phone revoked")
		}
		return nil
	})

	// A rotation of alice's key signed by mallory's, and the old key's
	// thief rotating it to a key of its own, are refused.
	mallory, _ := account.Generate(rand.Reader)
	thiefNew, _ := account.Generate(rand.Reader)
	forged, _ := mallory.Rotate(thiefNew, 2, nil, time.Now())
	forged.Old = newPub
	if err := bob.takeRotation(ctx, thiefPeer, rotationFrame(forged, nil)); !errors.Is(err, ErrRotationRefused) || !errors.Is(err, account.ErrBadSignature) {
		t.Fatalf("rotation signed by someone else: %v", err)
	}
	// A well-signed rotation of an account nobody here knows is not kept
	// (a stranger cannot fill members' stores).
	strangers, _ := mallory.Rotate(thiefNew, 1, nil, time.Now())
	if err := bob.takeRotation(ctx, thiefPeer, rotationFrame(strangers, nil)); !errors.Is(err, ErrRotationRefused) {
		t.Fatalf("rotation of an unknown account: %v", err)
	}
	if bob.currentAccount(mallory.Public()).Equal(thiefNew.Public()) {
		t.Fatal("bob kept a stranger's rotation")
	}
	competing, _ := oldKey.Rotate(thiefNew, 1, nil, time.Now())
	if err := carol.takeRotation(ctx, thiefPeer, rotationFrame(competing, nil)); !errors.Is(err, account.ErrCompetingRotation) {
		t.Fatalf("the old key's competing rotation: %v", err)
	}
	// Nor does a group take it: a policy that adds it is invalid.
	before := groupPolicy(mustHead(t, bob, g.ID))
	after := before.clone()
	after.Rotations = append(after.Rotations, competing.Marshal())
	if rotationRule(before, after) != rejectPolicy {
		t.Fatal("a policy with a competing rotation is valid")
	}
	// And the new key does not go to a device that is not alice's.
	thiefSeed := thiefNew.Bytes()
	if err := phone.takeRotation(ctx, bob.net.ID(), rotationFrame(competing, thiefSeed)); err == nil {
		t.Fatal("the phone took a key from bob")
	}
	phone.dev.mu.Lock()
	defer phone.dev.mu.Unlock()
	if !phone.dev.key.Public().Equal(newPub) {
		t.Fatal("the phone's key changed")
	}
}

// mustHead returns n's head epoch of group.
func mustHead(t *testing.T, n *Node, group string) *mls.Group {
	t.Helper()
	a, err := n.lookup(group)
	if err != nil {
		t.Fatal(err)
	}
	var out *mls.Group
	a.do(context.Background(), func() error {
		_, out = a.head()
		return nil
	})
	if out == nil {
		t.Fatal("no head epoch")
	}
	return out
}

// TestAccountRotationByNonAdminSurvivesRestart, on real nodes: bob, a
// member but no admin, rotates his key; alice, the admin, is handed the
// rotation and commits it into the group. Restarted, bob has the new key
// and the same identity in the group (the credential keeps its
// certificate), and still sends and receives.
func TestAccountRotationByNonAdminSurvivesRestart(t *testing.T) {
	ctx := ctxT(t, 120*time.Second)
	alice, err := realNodeWith(t, t.TempDir(), "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	home := t.TempDir()
	bob, err := realNodeWith(t, home, "bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	g := createAndJoin(t, ctx, alice, bob)
	bobID := append([]byte(nil), bob.selfID...)
	oldKey := bob.self.Cert.Account

	res, err := bob.AccountRotate(ctx)
	if err != nil {
		bob.Close()
		t.Fatal(err)
	}
	bob.dev.mu.Lock()
	newPub := bob.dev.key.Public()
	bob.dev.mu.Unlock()
	if res.New != newPub.Fingerprint() || res.Devices != 1 {
		bob.Close()
		t.Fatalf("rotation %+v", res)
	}
	for _, n := range []*Node{alice, bob} {
		eventually(t, 30*time.Second, "bob's rotation in the group", func() error {
			if !groupRotationsOf(t, n, g.ID).Current(oldKey).Equal(newPub) {
				return fmt.Errorf("%s does not see it", n.self.Name)
			}
			return nil
		})
	}
	bob.Close()
	if bob, err = realNodeWith(t, home, "bob", nil); err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if string(bob.selfID) != string(bobID) {
		t.Fatal("bob's identity changed with the rotation")
	}
	bob.dev.mu.Lock()
	got := bob.dev.key.Public()
	bob.dev.mu.Unlock()
	if !got.Equal(newPub) {
		t.Fatal("bob lost the new key on restart")
	}
	// A group bob makes now carries his chain from its first epoch.
	g2, err := bob.CreateGroup(ctx, "after")
	if err != nil {
		t.Fatal(err)
	}
	if !groupRotationsOf(t, bob, g2.ID).Current(oldKey).Equal(newPub) {
		t.Fatal("a group made after the rotation does not carry it")
	}
	ds, err := bob.DeviceList(ctx)
	if err != nil || len(ds) != 1 || !ds[0].Self {
		t.Fatalf("device list %+v, %v", ds, err)
	}
	if _, err := bob.Send(ctx, g.ID, "bob after the rotation"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, g.ID, "alice after the rotation"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{alice, bob} {
		eventually(t, 30*time.Second, "messages after the restart", func() error {
			return hasTexts(n, g.ID, "bob after the rotation", "alice after the rotation")
		})
	}
}
