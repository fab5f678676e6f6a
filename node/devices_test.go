package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"grove/account"
	"grove/commitorder"
	"grove/mls"
	"grove/node/api"
	"grove/p2p"
	"grove/store"
)

// startNode starts a node with cfg adjusted by tune, on a fresh MemNetwork
// node, and returns it and its error (a link that fails fails Start).
func startNode(t *testing.T, mn *p2p.MemNetwork, name string, tune func(*Config)) (*Node, error) {
	t.Helper()
	mnode, err := mn.NewNode(p2p.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Home: t.TempDir(), Name: name, Network: mnode, Logger: testLogger().With("node", name)}
	testTiming(&cfg)
	if tune != nil {
		tune(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		mnode.Close()
	})
	return n, n.Start(context.Background())
}

// hasDevices checks the members of group that n sees, as "name (device)".
func hasDevices(n *Node, group string, want ...string) error {
	ms, err := n.Members(context.Background(), group)
	if err != nil {
		return err
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%s (%s)", m.Name, m.Device))
	}
	if len(got) != len(want) {
		return fmt.Errorf("have %q, want %q", got, want)
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return fmt.Errorf("have %q, want %q", got, want)
		}
	}
	return nil
}

// realNodeWith starts a real node (libp2p on 127.0.0.1) in home with its
// config adjusted by tune; Start's error is returned (a failed link fails
// it).
func realNodeWith(t testing.TB, home, name string, tune func(*Config)) (*Node, error) {
	t.Helper()
	cfg := Config{Home: home, Name: name, Logger: testLogger().With("node", name),
		P2P: p2p.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HeartbeatInterval: 100 * time.Millisecond, Logger: testLogger()}}
	testTiming(&cfg)
	if tune != nil {
		tune(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(context.Background())
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// TestLinkRevokeDevice, on real nodes: alice links a phone to her laptop;
// bob and carol share two groups with her; the phone joins both by itself
// and the others see one person with two devices; both of alice's devices
// send and receive; a replayed link code is refused. The phone goes
// offline and alice revokes it from the laptop: it leaves both groups and
// bob and carol keep the signed revocation. Back online, the phone learns
// it, cannot link a device, is refused history and reads nothing sent
// after the revocation; carol sees alice with one device.
func TestLinkRevokeDevice(t *testing.T) {
	ctx := ctxT(t, 150*time.Second)
	laptop, bob, carol, groups := laptopBobCarol(t, ctx)

	// History from before the phone existed, which the link brings.
	if _, err := bob.Send(ctx, groups[0].ID, "before the phone existed"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "laptop reads it", func() error { return hasTexts(laptop, groups[0].ID, "before the phone existed") })
	code, err := laptop.DeviceLink(ctx)
	if err != nil {
		t.Fatal(err)
	}
	phoneHome := t.TempDir()
	phone, err := realNodeWith(t, phoneHome, "", func(c *Config) { c.Link, c.DeviceName = code.Code, "phone" })
	if err != nil {
		t.Fatal(err)
	}
	phoneOpen := true
	defer func() {
		if phoneOpen {
			phone.Close()
		}
	}()
	if acct, cmp := phone.LinkResult(); acct != "alice" || len(cmp) != 7 {
		t.Fatalf("link result %q %q", acct, cmp)
	}
	if h, err := phone.LinkHistory(); h != 1 || err != nil {
		t.Fatalf("link history: %d messages, %v", h, err)
	}
	// A replay of the same code, from another new device, is refused.
	if tablet, err := realNodeWith(t, t.TempDir(), "", func(c *Config) { c.Link, c.DeviceName = code.Code, "tablet" }); err == nil || !strings.Contains(err.Error(), "already used") {
		if tablet != nil {
			tablet.Close()
		}
		t.Fatalf("replayed link code: %v", err)
	}
	for _, g := range groups {
		for _, n := range []*Node{bob, carol, laptop, phone} {
			eventually(t, 60*time.Second, n.self.Name+" sees the phone in "+g.Name, func() error {
				return hasDevices(n, g.ID, "alice (laptop)", "alice (phone)", "bob (device)", "carol (device)")
			})
		}
	}
	if err := hasTexts(phone, groups[0].ID, "before the phone existed"); err != nil {
		t.Fatalf("history on the linked phone: %v", err)
	}
	bm, _ := bob.Members(ctx, groups[0].ID)
	var accts []string
	for _, m := range bm {
		if m.Name == "alice" {
			accts = append(accts, m.Account)
		}
	}
	if len(accts) != 2 || accts[0] != accts[1] || accts[0] == "" {
		t.Fatalf("alice's devices show accounts %q", accts)
	}
	for _, g := range groups {
		for _, n := range []*Node{laptop, phone, bob} {
			if _, err := n.Send(ctx, g.ID, "hello from "+n.self.Name+" "+n.cfg.DeviceName+" in "+g.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, g := range groups {
		for _, n := range []*Node{laptop, phone, bob, carol} {
			eventually(t, 20*time.Second, "all read in "+g.Name, func() error {
				return hasTexts(n, g.ID, "hello from alice laptop in "+g.Name, "hello from alice phone in "+g.Name, "hello from bob  in "+g.Name)
			})
		}
	}
	// The log names the person and the device.
	bl, _ := bob.Log(ctx, groups[0].ID, 100)
	shown := map[string]bool{}
	for _, m := range bl {
		shown[m.Sender+"/"+m.SenderDevice] = true
	}
	if !shown["alice/phone"] || !shown["alice/laptop"] {
		t.Fatalf("bob's log shows senders %v", shown)
	}
	if st, _ := phone.Status(ctx); st.Device != "phone" || st.Account != accts[0] {
		t.Fatalf("phone status: device %q account %q", st.Device, st.Account)
	}
	ds, err := laptop.DeviceList(ctx)
	if err != nil || len(ds) != 2 || ds[1].Name != "phone" || ds[1].Groups != 2 || !ds[1].Online {
		t.Fatalf("device list %+v %v", ds, err)
	}

	// The phone goes offline; alice revokes it from the laptop.
	phone.Close()
	phoneOpen = false
	// (A home that is already a device is not linked again.)
	if again, err := realNodeWith(t, phoneHome, "", func(c *Config) { c.Link = code.Code }); !errors.Is(err, ErrInvalidConfig) {
		if again != nil {
			again.Close()
		}
		t.Fatalf("link into a home that holds a device: %v", err)
	}
	if _, err := laptop.DeviceRevoke(ctx, "phone"); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, n := range []*Node{bob, carol, laptop} {
			eventually(t, 30*time.Second, "phone removed from "+g.Name, func() error {
				return hasDevices(n, g.ID, "alice (laptop)", "bob (device)", "carol (device)")
			})
		}
	}
	for _, n := range []*Node{bob, carol} {
		if !n.revokedPeer(phone.PeerID()) {
			t.Fatalf("%s did not keep the revocation", n.self.Name)
		}
	}
	for _, g := range groups {
		if _, err := bob.Send(ctx, g.ID, "after the revocation"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "carol reads it", func() error { return hasTexts(carol, g.ID, "after the revocation") })
	}

	// Back online.
	phone, err = realNodeWith(t, phoneHome, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	phoneOpen = true
	for _, n := range []*Node{laptop, bob, carol} {
		phone.Connect(ctx, n.AddrInfo())
	}
	eventually(t, 20*time.Second, "phone learns its revocation", func() error {
		if _, err := phone.DeviceLink(ctx); err == nil {
			return errors.New("the revoked phone still makes link codes")
		}
		return nil
	})
	time.Sleep(2 * time.Second) // time to sync, which members refuse it
	for _, g := range groups {
		if err := hasTexts(phone, g.ID, "after the revocation"); err == nil {
			t.Fatalf("the revoked phone read a message sent after its revocation in %s", g.Name)
		}
	}
	// Forward secrecy with devices: the phone's last state opens nothing
	// bob logged in the epochs after it, whatever reaches it.
	for _, g := range groups {
		pa, err := phone.lookupServing(g.ID)
		if err != nil {
			t.Fatal(err)
		}
		var last *mls.Group
		pa.do(ctx, func() error {
			_, h := pa.head()
			b, _ := h.MarshalBinary()
			last, err = mls.UnmarshalGroup(b)
			return err
		})
		if last == nil {
			t.Fatalf("no state of %s on the phone", g.Name)
		}
		ba, _ := bob.lookup(g.ID)
		opened, tried := 0, 0
		for e := last.Epoch() + 1; e <= last.Epoch()+3; e++ {
			entries, _ := bob.db.LogByEpoch(ba.id, e)
			for _, le := range entries {
				tried++
				if pm, err := last.ProcessMessage(le.Message, mls.ProcessOptions{Now: time.Now(), IgnoreLifetimes: true}); err == nil && pm.Kind == mls.KindApplication {
					opened++
				}
			}
		}
		if tried == 0 || opened != 0 {
			t.Fatalf("%s: the revoked phone's last state opened %d of %d later messages", g.Name, opened, tried)
		}
	}
	// Members refuse it history, even the part before its removal.
	for _, g := range groups {
		a, _ := bob.lookup(g.ID)
		s, err := phone.net.OpenStream(ctx, bob.PeerID(), p2p.ProtocolSync)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send((&syncRequest{Kind: syncLog, Group: a.id}).marshal()); err != nil {
			t.Fatal(err)
		}
		if frame, err := s.Recv(); err == nil {
			t.Fatalf("bob served the revoked phone history of %s (%d bytes)", g.Name, len(frame))
		}
		s.Close()
	}
	if laptop.metrics.rejected[rejectDevice.index()].Load() != 0 {
		t.Fatal("a valid device certificate was rejected")
	}
}

// A member whose device certificate was signed by another account than
// the one it names, or that certifies another key than its leaf's, is
// refused: verifyDevice and addConflict say so, nothing is added.
func TestForeignDeviceCertificateRefused(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 30*time.Second)
	alice := memNode(t, mn, "alice")
	g, err := alice.CreateGroup(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := alice.lookup(g.ID)
	_, head := a.head()
	mallory, _ := account.Generate(rand.Reader)
	suite, _ := mls.CipherSuite(1).Suite()
	sig, _ := suite.GenerateSigningKey(rand.Reader)
	pid := testPeerID(t)

	// A certificate of alice's account made by mallory: relabelled, its
	// signature fails.
	c, _ := mallory.Certify(account.Device{AccountName: "alice", Name: "laptop", SignatureKey: sig.PublicKey(), Peer: []byte(pid), Created: time.Now()})
	c.Account = alice.dev.key.Public()
	kp := keyPackageWith(t, memberIdentity{Name: "alice", Peer: pid, Cert: c}, sig)
	if why := addConflict(head, kp, nil); !strings.Contains(why, "device certificate") {
		t.Fatalf("relabelled certificate: %q", why)
	}
	if _, err := verifyDevice(kp.LeafNode.Credential.Identity, sig.PublicKey()); !errors.Is(err, ErrDeviceCertificate) || !errors.Is(err, account.ErrBadSignature) {
		t.Fatalf("verifyDevice: %v", err)
	}
	// Alice's real certificate copied into mallory's own leaf: it
	// certifies another key.
	stolen := alice.dev.cert
	kp2 := keyPackageWith(t, memberIdentity{Name: "alice", Peer: alice.PeerID(), Cert: stolen}, sig)
	if _, err := verifyDevice(kp2.LeafNode.Credential.Identity, sig.PublicKey()); !errors.Is(err, ErrDeviceCertificate) || !errors.Is(err, account.ErrBadSignature) {
		t.Fatalf("copied certificate: %v", err)
	}
	if why := addConflict(head, kp2, nil); why == "" {
		t.Fatal("a copied certificate was accepted")
	}
	// Mallory's own account is a different person, not alice's device.
	own, _ := mallory.Certify(account.Device{AccountName: "alice", Name: "laptop", SignatureKey: sig.PublicKey(), Peer: []byte(pid), Created: time.Now()})
	kp3 := keyPackageWith(t, memberIdentity{Name: "alice", Peer: pid, Cert: own}, sig)
	if why := addConflict(head, kp3, nil); why != "" {
		t.Fatalf("a well-signed certificate of another account: %q", why)
	}
	names := displayNames([][]byte{alice.selfID, kp3.LeafNode.Credential.Identity})
	if names[string(alice.selfID)] == names[string(kp3.LeafNode.Credential.Identity)] {
		t.Fatalf("two accounts named alice are shown alike: %q", names)
	}
}

// A revocation signed by another account than the revoked device's is
// refused with a clear error and nothing is kept.
func TestRevocationBySomeoneElseRefused(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 60*time.Second)
	alice := memNode(t, mn, "alice")
	bob := memNode(t, mn, "bob")
	g, _ := alice.CreateGroup(ctx, "team")
	inv, _ := alice.Invite(ctx, g.ID)
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	mallory, _ := account.Generate(rand.Reader)
	// Mallory cannot sign a revocation of alice's device with her key...
	if _, err := mallory.Revoke(alice.dev.cert, time.Now()); !errors.Is(err, account.ErrOtherAccount) {
		t.Fatalf("Revoke: %v", err)
	}
	// ...and a forged one, claiming alice's account, is refused by bob.
	c := *alice.dev.cert
	c.Account = mallory.Public()
	c.Signature = nil
	mc, _ := mallory.Certify(c.Device)
	r, _ := mallory.Revoke(mc, time.Now())
	err := bob.takeRevocation(ctx, r.Marshal())
	if !errors.Is(err, ErrRevocationRefused) || !errors.Is(err, account.ErrOtherAccount) {
		t.Fatalf("revocation by another account: %v", err)
	}
	r.Account = alice.dev.key.Public()
	if err := bob.takeRevocation(ctx, r.Marshal()); !errors.Is(err, account.ErrBadSignature) {
		t.Fatalf("relabelled revocation: %v", err)
	}
	if bob.revokedPeer(alice.PeerID()) || len(bob.dev.revoked.List()) != 0 {
		t.Fatal("a refused revocation was kept")
	}
	if err := bob.takeRevocation(ctx, []byte("junk")); !errors.Is(err, account.ErrMalformed) {
		t.Fatalf("junk revocation: %v", err)
	}
}

// Backup on alice's laptop, restore into a fresh home: the account is
// the same person, the history is back, and once the restored device is in
// the group again (linked by the laptop) it is readable and searchable and
// it can send.
func TestBackupRestore(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 90*time.Second)
	laptop, _ := startNode(t, mn, "alice", func(c *Config) { c.DeviceName = "laptop" })
	bob := memNode(t, mn, "bob")
	g, _ := laptop.CreateGroup(ctx, "team")
	inv, _ := laptop.Invite(ctx, g.ID)
	if _, err := bob.Join(ctx, inv.Code); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		txt := fmt.Sprintf("message %d about the zeppelin", i)
		from := []*Node{laptop, bob}[i%2]
		if _, err := from.Send(ctx, g.ID, txt); err != nil {
			t.Fatal(err)
		}
		want = append(want, txt)
	}
	eventually(t, 15*time.Second, "laptop has all", func() error { return hasTexts(laptop, g.ID, want...) })

	path := filepath.Join(t.TempDir(), "alice.backup")
	res, err := laptop.BackupCreate(ctx, api.BackupRequest{Path: path, Passphrase: "pw", WorkFactor: 10})
	if err != nil || res.Messages != 20 || res.Groups != 1 {
		t.Fatalf("backup %+v %v", res, err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("zeppelin")) {
		t.Fatal("backup holds plaintext")
	}
	if _, err := account.ReadBackup(bytes.NewReader(raw), "wrong"); !errors.Is(err, account.ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	b, err := account.ReadBackup(bytes.NewReader(raw), "pw")
	if err != nil {
		t.Fatal(err)
	}
	restored, err := startNode(t, mn, "", func(c *Config) { c.Restore, c.DeviceName = b, "restored" })
	if err != nil {
		t.Fatal(err)
	}
	if restored.self.Name != "alice" || !restored.dev.key.Public().Equal(laptop.dev.key.Public()) {
		t.Fatalf("restored as %q", restored.self.Name)
	}
	// Back into the group by itself, as a device of the admin's account
	// (accountjoin.go); then the history shows and is searchable. A join
	// by invite racing it is refused, not run twice.
	inv2, _ := laptop.Invite(ctx, g.ID)
	jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	restored.Join(jctx, inv2.Code)
	cancel()
	eventually(t, 30*time.Second, "restored device in the group", func() error {
		return hasDevices(bob, g.ID, "alice (laptop)", "alice (restored)", "bob (device)")
	})
	if err := hasTexts(restored, g.ID, want...); err != nil {
		t.Fatal(err)
	}
	sr, err := restored.Search(ctx, api.SearchRequest{Query: "zeppelin", Limit: 100})
	if err != nil || len(sr.Hits) != 20 {
		t.Fatalf("search after restore: %d hits, %v", len(sr.Hits), err)
	}
	if _, err := restored.Send(ctx, g.ID, "back again"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "bob reads the restored device", func() error { return hasTexts(bob, g.ID, "back again") })
}

// keyPackageWith makes a KeyPackage for identity signed with sig.
func keyPackageWith(t *testing.T, id memberIdentity, sig *mls.SigningKey) *mls.KeyPackage {
	t.Helper()
	kp, err := mls.NewKeyPackage(&mls.KeyPackageParams{Suite: DefaultCipherSuite, Credential: mls.NewBasicCredential(id.marshal()),
		SigningKey: sig, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		Capabilities: mls.Capabilities{Extensions: groveExtensions}, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	return &kp.KeyPackage
}

type frames [][]byte

func (f *frames) Recv() ([]byte, error) {
	if len(*f) == 0 {
		return nil, errors.New("stream ended")
	}
	out := (*f)[0]
	*f = (*f)[1:]
	return out, nil
}

// A forged history bundle (a batch sealed without the link's secret, an
// altered one, a count that disagrees, a stream cut short) is refused and
// stores nothing.
func TestForgedHistoryRefused(t *testing.T) {
	mn := p2p.NewMemNetwork()
	n := memNode(t, mn, "phone")
	code, _ := account.NewLinkCode(rand.Reader, []byte("laptop"), nil, time.Now().Add(time.Minute))
	other, _ := account.NewLinkCode(rand.Reader, []byte("laptop"), nil, time.Now().Add(time.Minute))
	group := bytes.Repeat([]byte{9}, 32)
	msgs := []account.Message{{Group: group, ID: [16]byte{1}, Time: time.Now().UTC(), Sender: n.selfID, Text: "forged words", Epoch: 1}}
	me := []byte(n.PeerID())
	good, _ := account.SealHistory(code, me, 0, msgs)
	forged, _ := account.SealHistory(other, me, 0, msgs)
	altered := bytes.Clone(good)
	altered[len(altered)-1] ^= 1
	header := func(total uint64) []byte { w := wbuf{}; w.u8(linkHistoryHeader); w.u64(total); return w.b }
	batch := func(b []byte) []byte { return append([]byte{linkHistoryBatch}, b...) }
	end := func(k uint64) []byte { w := wbuf{}; w.u8(linkHistoryEnd); w.u64(k); return w.b }
	for name, c := range map[string]struct {
		in   frames
		want error
	}{
		"forged":    {frames{header(1), batch(forged), end(1)}, account.ErrForgedHistory},
		"altered":   {frames{header(1), batch(altered), end(1)}, account.ErrForgedHistory},
		"count":     {frames{header(2), batch(good), end(1)}, ErrMalformed},
		"batches":   {frames{header(1), batch(good), end(2)}, ErrMalformed},
		"cut short": {frames{header(1), batch(good)}, nil},
		"unknown":   {frames{header(1), {9}}, ErrMalformed},
		"no header": {frames{batch(good)}, ErrMalformed},
	} {
		in := c.in
		_, err := n.receiveHistory(&in, code)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if ms, err := n.db.Messages(group, time.Time{}, 100); err != nil || len(ms) != 0 {
		t.Fatalf("refused history stored %d messages (%v)", len(ms), err)
	}
	// The genuine bundle is taken.
	in := frames{header(1), batch(good), end(1)}
	if got, err := n.receiveHistory(&in, code); got != 1 || err != nil {
		t.Fatalf("genuine history: %d, %v", got, err)
	}
}

// Admin rights belong to the account: alice's linked phone removes bob in
// a group its laptop created, while bob, no admin, cannot; then the laptop
// removes "carol" by her person's name, both of her devices at once.
func TestAdminRightsBelongToAccount(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 90*time.Second)
	laptop, err := startNode(t, mn, "alice", func(c *Config) { c.DeviceName = "laptop" })
	if err != nil {
		t.Fatal(err)
	}
	bob := memNode(t, mn, "bob")
	carol, _ := startNode(t, mn, "carol", func(c *Config) { c.DeviceName = "desk" })
	g, _ := laptop.CreateGroup(ctx, "team")
	for _, n := range []*Node{bob, carol} {
		inv, _ := laptop.Invite(ctx, g.ID)
		if _, err := n.Join(ctx, inv.Code); err != nil {
			t.Fatal(err)
		}
	}
	link := func(from *Node, name string) *Node {
		code, err := from.DeviceLink(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := startNode(t, mn, "", func(c *Config) { c.Link, c.DeviceName = code.Code, name })
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	phone, carolPhone := link(laptop, "phone"), link(carol, "phone")
	for _, n := range []*Node{phone, carolPhone} {
		eventually(t, 30*time.Second, n.cfg.DeviceName+" joined", func() error { _, err := n.lookup(g.ID); return err })
	}
	eventually(t, 30*time.Second, "five devices", func() error {
		return hasDevices(laptop, g.ID, "alice (laptop)", "alice (phone)", "bob (device)", "carol (desk)", "carol (phone)")
	})
	ms, _ := phone.Members(ctx, g.ID)
	for _, m := range ms {
		if want := m.Name == "alice"; m.Admin != want {
			t.Fatalf("%s (%s) admin=%v", m.Name, m.Device, m.Admin)
		}
	}
	if err := bob.Remove(ctx, g.ID, "alice (phone)"); err == nil {
		t.Fatal("bob, no admin, removed a member")
	}
	if err := phone.Remove(ctx, g.ID, "bob"); err != nil {
		t.Fatalf("the phone as admin: %v", err)
	}
	eventually(t, 30*time.Second, "bob removed by the phone", func() error {
		return hasDevices(laptop, g.ID, "alice (laptop)", "alice (phone)", "carol (desk)", "carol (phone)")
	})
	if err := laptop.Remove(ctx, g.ID, "carol"); err != nil {
		t.Fatalf("remove a person: %v", err)
	}
	eventually(t, 30*time.Second, "both of carol's devices removed", func() error {
		return hasDevices(laptop, g.ID, "alice (laptop)", "alice (phone)")
	})
}

// TestRelayedWelcomeFromAdminsSibling: a device of the admin's account is
// an admin too, so the Welcome it relays for a member's join request
// reaches the waiting inviter, while one from a member of no admin
// account is still ignored. The Welcome used to be refused because the
// policy lists only the laptop: when the phone's Commit won the fork
// over the laptop's, the joiner never got in (TestAdminRightsBelongToAccount
// failed 1 run in 4, "no admin of the group added you before the
// deadline").
func TestRelayedWelcomeFromAdminsSibling(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 60*time.Second)
	laptop, err := startNode(t, mn, "alice", func(c *Config) { c.DeviceName = "laptop" })
	if err != nil {
		t.Fatal(err)
	}
	bob, carol := memNode(t, mn, "bob"), memNode(t, mn, "carol")
	g, _ := laptop.CreateGroup(ctx, "team")
	for _, n := range []*Node{bob, carol} {
		inv, _ := laptop.Invite(ctx, g.ID)
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
	for _, n := range []*Node{phone, bob, carol} {
		eventually(t, 30*time.Second, "the phone in the group", func() error {
			return hasDevices(n, g.ID, "alice (laptop)", "alice (phone)", "bob (device)", "carol (device)")
		})
	}
	ac, _ := carol.lookup(g.ID)
	// A broken KeyPackage: the admins drop the request, so the only
	// Welcomes are the ones this test relays.
	ch, stop, err := carol.requestJoin(ctx, ac, []byte{0, 1, 0, 5, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(false)
	var id [16]byte
	carol.mu.Lock()
	for k := range carol.relays {
		id = k
	}
	carol.mu.Unlock()
	relay := func(n *Node, welcome string) {
		t.Helper()
		a, _ := n.lookup(g.ID)
		p := &appPayload{Kind: kindWelcome, Time: time.Now(), Ref: id, Welcome: []byte(welcome)}
		p.ID[0] = welcome[0]
		if err := a.do(ctx, func() error { return a.encryptAndPublishIntent(p) }); err != nil {
			t.Fatal(err)
		}
	}
	relay(bob, "forged by bob")
	select {
	case res := <-ch:
		t.Fatalf("a non-admin's welcome was accepted: %q", res.welcome)
	case <-time.After(time.Second):
	}
	relay(phone, "from the phone")
	select {
	case res := <-ch:
		if string(res.welcome) != "from the phone" {
			t.Fatalf("got %q", res.welcome)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the welcome relayed by the admin's other device did not arrive")
	}
}

// TestCommitAddingForgedDeviceRejected: the admin's own modified client
// commits the Add of a leaf whose device certificate claims alice's
// account but is signed by mallory's. Every other member judges the Commit
// invalid (rejectDevice) and stays on its epoch.
func TestCommitAddingForgedDeviceRejected(t *testing.T) {
	checkLeaks(t)
	_, ns, g := memGroup(t, "alice", "bob", "carol")
	alice, bob, carol := ns[0], ns[1], ns[2]
	ctx := ctxT(t, 30*time.Second)
	before := groupEpoch(t, bob, g)
	mallory, _ := account.Generate(rand.Reader)
	suite, _ := DefaultCipherSuite.Suite()
	sig, _ := suite.GenerateSigningKey(rand.Reader)
	pid := testPeerID(t)
	c, _ := mallory.Certify(account.Device{AccountName: "alice", Name: "tablet", SignatureKey: sig.PublicKey(), Peer: []byte(pid), Created: time.Now()})
	c.Account = alice.dev.key.Public()
	kp := keyPackageWith(t, memberIdentity{Name: "alice", Peer: pid, Cert: c}, sig)
	var commit []byte
	var rule rejectReason
	headState(t, ctx, alice, g, func(eid commitorder.EpochID, head, cp *mls.Group) {
		// Framed as an honest client frames its Commits (private, with
		// the commit AD), so that only the device rule can refuse it.
		sc, err := cp.Commit(&mls.CommitOptions{SkipCached: true, Private: true, Proposals: []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *kp}}},
			AuthenticatedData: commitAD(eid, commitorder.ClassAdd, commitorder.MemberID(alice.selfID)), Now: time.Now(), Rand: rand.Reader})
		if err != nil {
			t.Errorf("craft commit: %v", err)
			return
		}
		commit = sc.Message
		next, err := sc.Merge()
		if err != nil {
			t.Errorf("merge: %v", err)
			return
		}
		rule = commitRule(head, next, mls.MemberSender(cp.OwnLeaf()))
	})
	if commit == nil {
		t.FailNow()
	}
	if rule != rejectDevice {
		t.Fatalf("commitRule = %q, want %q", rule, rejectDevice)
	}
	publishAs(t, ctx, alice, g, commit)
	eventually(t, 10*time.Second, "rejections counted", func() error {
		for _, n := range []*Node{bob, carol} {
			if n.metrics.rejected[rejectDevice.index()].Load() == 0 {
				return fmt.Errorf("%s has not rejected it", n.self.Name)
			}
		}
		return nil
	})
	time.Sleep(time.Second) // past finality: an accepted commit would be applied
	for _, n := range []*Node{bob, carol} {
		if e := groupEpoch(t, n, g); e != before {
			t.Fatalf("%s moved from epoch %d to %d on the forged device", n.self.Name, before, e)
		}
	}
}

// TestRestoreWithoutSibling: alice's only device (the group's admin) is
// lost after a backup; the home restored from it gets back into the group
// by itself, as a device of the admin's account (external commit, with a
// GroupInfo bob and carol agree on), shows the history, sends, and removes
// the lost laptop. A device of a non-admin account is refused the
// GroupInfo.
func TestRestoreWithoutSibling(t *testing.T) {
	mn := p2p.NewMemNetwork()
	ctx := ctxT(t, 90*time.Second)
	laptop, _ := startNode(t, mn, "alice", func(c *Config) { c.DeviceName = "laptop" })
	bob := memNode(t, mn, "bob")
	carol := memNode(t, mn, "carol")
	g, _ := laptop.CreateGroup(ctx, "team")
	for _, n := range []*Node{bob, carol} {
		inv, _ := laptop.Invite(ctx, g.ID)
		if _, err := n.Join(ctx, inv.Code); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range []*Node{laptop, bob, carol} {
		if _, err := n.Send(ctx, g.ID, fmt.Sprintf("airship note %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 15*time.Second, "laptop has all", func() error {
		return hasTexts(laptop, g.ID, "airship note 0", "airship note 1", "airship note 2")
	})
	path := filepath.Join(t.TempDir(), "alice.backup")
	if _, err := laptop.BackupCreate(ctx, api.BackupRequest{Path: path, Passphrase: "pw", WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	laptop.Close() // lost, home and all
	raw, _ := os.ReadFile(path)
	b, err := account.ReadBackup(bytes.NewReader(raw), "pw")
	if err != nil {
		t.Fatal(err)
	}
	var published *publishLog
	restored, err := startNode(t, mn, "", func(c *Config) {
		c.Restore, c.DeviceName = b, "restored"
		published = &publishLog{Network: c.Network}
		c.Network = published
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "restored device back in the group", func() error {
		for _, n := range []*Node{restored, bob, carol} {
			if err := hasDevices(n, g.ID, "alice (laptop)", "alice (restored)", "bob (device)", "carol (device)"); err != nil {
				return fmt.Errorf("%s: %w", n.self.Name, err)
			}
		}
		return nil
	})
	// Its external Commit went sealed under the parent epoch's key the
	// members sent with the GroupInfo, as a rejoin's does
	// (TestRejoinCommitSealed), not readable to all who hold the group
	// secret.
	ra, err := restored.lookup(g.ID)
	if err != nil {
		t.Fatal(err)
	}
	published.mu.Lock()
	sealed := 0
	for _, env := range published.got {
		body, err := ra.wire.open(env)
		switch {
		case err != nil:
			t.Errorf("a published payload does not open: %v", err)
		case isSealed(body):
			sealed++
		default:
			t.Errorf("published unsealed (external commit: %v)", externalCommit(body))
		}
	}
	published.mu.Unlock()
	if sealed == 0 {
		t.Fatal("the restored device published nothing sealed")
	}
	if err := hasTexts(restored, g.ID, "airship note 0", "airship note 1", "airship note 2"); err != nil {
		t.Fatal(err)
	}
	sr, err := restored.Search(ctx, api.SearchRequest{Query: "airship", Limit: 10})
	if err != nil || len(sr.Hits) != 3 {
		t.Fatalf("search: %d hits, %v", len(sr.Hits), err)
	}
	if _, err := restored.Send(ctx, g.ID, "back from the backup"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{bob, carol} {
		eventually(t, 15*time.Second, n.self.Name+" reads it", func() error { return hasTexts(n, g.ID, "back from the backup") })
	}
	if err := restored.Remove(ctx, g.ID, "alice (laptop)"); err != nil {
		t.Fatalf("the restored device removes the lost one: %v", err)
	}
	eventually(t, 30*time.Second, "lost laptop removed", func() error {
		return hasDevices(bob, g.ID, "alice (restored)", "bob (device)", "carol (device)")
	})
	// Bob's account is no admin's: no GroupInfo for a device of it.
	a, _ := bob.lookup(g.ID)
	if _, _, _, err := carol.accountGroupInfo(ctx, a.id, bob.selfID, bob.PeerID()); !errors.Is(err, errNotAccountAdmin) {
		t.Fatalf("GroupInfo for a non-admin account: %v", err)
	}
	// Nor for a certificate naming another peer than the requester.
	if _, _, _, err := carol.accountGroupInfo(ctx, a.id, restored.selfID, bob.PeerID()); !errors.Is(err, errNotAccountAdmin) {
		t.Fatalf("GroupInfo for a borrowed certificate: %v", err)
	}
}

// An identity with a certificate, its names at their longest, fits the
// store's sender bound, and parses back to itself.
func TestIdentityV2Size(t *testing.T) {
	k, _ := account.Generate(rand.Reader)
	suite, _ := mls.CipherSuite(7).Suite() // P-384: a longer key changes nothing, the identity leaves it out
	sig, _ := suite.GenerateSigningKey(rand.Reader)
	pid := testPeerID(t)
	name, dev := strings.Repeat("n", maxNameLen), strings.Repeat("d", maxDeviceNameLen)
	c, err := k.Certify(account.Device{AccountName: name, Name: dev, SignatureKey: sig.PublicKey(), Peer: []byte(pid), Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	id := memberIdentity{Name: name, Peer: pid, Cert: c}.marshal()
	if len(id) > store.MaxSenderLen {
		t.Fatalf("identity of %d bytes, store keeps senders of up to %d", len(id), store.MaxSenderLen)
	}
	mi, err := verifyDevice(id, sig.PublicKey())
	if err != nil || !bytes.Equal(mi.marshal(), id) || mi.Cert.Device.Name != dev {
		t.Fatalf("round trip: %v", err)
	}
	if err := validDeviceName(dev + "x"); err == nil {
		t.Fatal("a device name over the bound was accepted")
	}
}

// FuzzIdentityV2: identities with a device certificate parse back to the
// same bytes, and never panic.
func FuzzIdentityV2(f *testing.F) {
	k, _ := account.Generate(rand.Reader)
	_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
	pid, _ := peer.IDFromPublicKey(pub)
	c, _ := k.Certify(account.Device{AccountName: "alice", Name: "laptop", SignatureKey: []byte("key"), Peer: []byte(pid), Created: time.Unix(1_800_000_000, 0)})
	f.Add(memberIdentity{Name: "alice", Peer: pid, Cert: c}.marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := parseIdentity(data)
		if err != nil {
			return
		}
		if got := id.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("identity re-encoding differs")
		}
		verifyDevice(data, []byte("key"))
	})
}
