package account

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
)

func newKey(t testing.TB) *Key {
	t.Helper()
	k, err := Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testDevice(name string) Device {
	return Device{
		AccountName: "alice", Name: name,
		SignatureKey: bytes.Repeat([]byte{byte(len(name))}, 32),
		Peer:         []byte("peer-" + name),
		Created:      time.Unix(1_800_000_000, 0),
	}
}

func TestCertificateRoundTripAndVerify(t *testing.T) {
	k := newKey(t)
	c, err := k.Certify(testDevice("laptop"))
	if err != nil {
		t.Fatal(err)
	}
	enc := c.Marshal()
	got, err := ParseCertificate(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), enc) {
		t.Fatal("parse then marshal differs")
	}
	if err := got.VerifyFor(k.Public()); err != nil {
		t.Fatal(err)
	}
	if err := got.Binds(c.Device.SignatureKey, c.Device.Peer); err != nil {
		t.Fatal(err)
	}
	if err := got.Binds(c.Device.SignatureKey, []byte("other peer")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("certificate bound to another peer: %v", err)
	}
	if got.Device.ID() != c.Device.ID() || len(got.Device.ID()) != 16 {
		t.Fatalf("device id %q", got.Device.ID())
	}
}

// A certificate signed by another account is a different person: it
// verifies under its own key, and is refused as ours with ErrOtherAccount.
func TestCertificateOfAnotherAccountRefused(t *testing.T) {
	alice, mallory := newKey(t), newKey(t)
	c, err := mallory.Certify(testDevice("laptop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyFor(alice.Public()); !errors.Is(err, ErrOtherAccount) {
		t.Fatalf("VerifyFor(alice) = %v, want ErrOtherAccount", err)
	}
	// Relabelling it with alice's key breaks the signature.
	c.Account = alice.Public()
	if err := c.VerifyFor(alice.Public()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("relabelled certificate: %v, want ErrBadSignature", err)
	}
}

// Every signed field counts: changing any one breaks the signature.
func TestCertificateTamperedFieldsRefused(t *testing.T) {
	k := newKey(t)
	c, _ := k.Certify(testDevice("laptop"))
	for name, mut := range map[string]func(*Certificate){
		"account name": func(c *Certificate) { c.Device.AccountName = "mallory" },
		"device name":  func(c *Certificate) { c.Device.Name = "phone" },
		"key":          func(c *Certificate) { c.Device.SignatureKey = bytes.Repeat([]byte{9}, 32) },
		"peer":         func(c *Certificate) { c.Device.Peer = []byte("elsewhere") },
		"created":      func(c *Certificate) { c.Device.Created = c.Device.Created.Add(time.Second) },
	} {
		cc, _ := ParseCertificate(c.Marshal())
		mut(cc)
		if err := cc.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: Verify = %v", name, err)
		}
	}
}

func TestRevocation(t *testing.T) {
	alice, mallory := newKey(t), newKey(t)
	laptop, _ := alice.Certify(testDevice("laptop"))
	phone, _ := alice.Certify(testDevice("phone"))
	r, err := alice.Revoke(phone, time.Unix(1_800_000_100, 0))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRevocation(r.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), r.Marshal()) {
		t.Fatal("parse then marshal differs")
	}
	var rs Revocations
	if added, err := rs.Add(got, phone.Account); err != nil || !added {
		t.Fatalf("Add = %v, %v", added, err)
	}
	if added, _ := rs.Add(got, phone.Account); added {
		t.Fatal("the same revocation added twice")
	}
	if rs.Revoked(phone) == nil || rs.Revoked(laptop) != nil {
		t.Fatal("Revoked disagrees with the revocation")
	}

	// Mallory cannot revoke alice's device: with his own key the
	// revocation is of another account, with alice's name it breaks.
	if _, err := mallory.Revoke(phone, time.Now()); !errors.Is(err, ErrOtherAccount) {
		t.Fatalf("mallory.Revoke(alice's phone) = %v", err)
	}
	forged := &Revocation{Account: mallory.Public(), SignatureKey: laptop.Device.SignatureKey, Peer: laptop.Device.Peer, Revoked: time.Now()}
	msg, _ := forged.signedBytes()
	forged.Signature = make([]byte, 64)
	copy(forged.Signature, signWith(mallory, msg))
	var rs2 Revocations
	if _, err := rs2.Add(forged, laptop.Account); !errors.Is(err, ErrOtherAccount) {
		t.Fatalf("revocation signed by another account: %v", err)
	}
	forged.Account = alice.Public()
	if _, err := rs2.Add(forged, laptop.Account); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("revocation relabelled to alice: %v", err)
	}
	if len(rs2.List()) != 0 || rs2.Revoked(laptop) != nil {
		t.Fatal("a refused revocation was kept")
	}
}

func signWith(k *Key, msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

func TestLinkCodeText(t *testing.T) {
	c, err := NewLinkCode(rand.Reader, []byte("peer-e"), []string{"/ip4/127.0.0.1/tcp/4001"}, time.Unix(1_800_000_600, 0))
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	if !strings.HasPrefix(s, LinkCodePrefix) {
		t.Fatalf("code %q", s)
	}
	got, err := ParseLinkCode("  " + strings.ToUpper(s[:len(LinkCodePrefix)]) + s[len(LinkCodePrefix):] + "\n")
	if err == nil {
		t.Fatalf("prefix is case-sensitive, got %v", got)
	}
	got, err = ParseLinkCode(s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != s || got.Secret != c.Secret || got.Addrs[0] != c.Addrs[0] {
		t.Fatal("link code round trip differs")
	}
	// One mistyped character is caught by the checksum.
	i := len(LinkCodePrefix) + 5
	bad := s[:i] + string("ab"[map[bool]int{true: 1}[s[i] == 'a']]) + s[i+1:]
	if _, err := ParseLinkCode(bad); !errors.Is(err, ErrBadLinkCode) {
		t.Fatalf("mistyped code: %v", err)
	}
	if _, err := ParseLinkCode("grove-invite-xyz"); !errors.Is(err, ErrBadLinkCode) {
		t.Fatalf("not a link code: %v", err)
	}
}

func TestLinkExchange(t *testing.T) {
	alice := newKey(t)
	laptop, _ := alice.Certify(testDevice("laptop"))
	code, _ := NewLinkCode(rand.Reader, []byte("peer-laptop"), nil, time.Now().Add(time.Minute))
	phonePeer, phoneKey := []byte("peer-phone"), bytes.Repeat([]byte{7}, 32)

	req := NewLinkRequest(code, phonePeer, "phone", phoneKey)
	wire, err := ParseLinkRequest(req.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if err := wire.Check(code, phonePeer); err != nil {
		t.Fatal(err)
	}
	// The same request from another peer (a relay of it) does not verify.
	if err := wire.Check(code, []byte("peer-mallory")); !errors.Is(err, ErrLinkProof) {
		t.Fatalf("relayed request: %v", err)
	}
	// Nor one made without the secret.
	other, _ := NewLinkCode(rand.Reader, code.Peer, nil, code.Expires)
	if err := NewLinkRequest(other, phonePeer, "phone", phoneKey).Check(code, phonePeer); !errors.Is(err, ErrLinkProof) {
		t.Fatalf("request under another secret: %v", err)
	}

	cert, err := alice.Certify(Device{AccountName: "alice", Name: wire.DeviceName, SignatureKey: wire.SignatureKey, Peer: phonePeer, Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	g := &Grant{Key: alice, Certificate: cert, Devices: []*Certificate{laptop}, Invites: []string{"code-1", "code-2"}}
	sealed := g.Seal(code, phonePeer)
	got, err := OpenGrant(code, phonePeer, phoneKey, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Key.Public().Equal(alice.Public()) || len(got.Devices) != 1 || got.Devices[0].Device.Name != "laptop" || len(got.Invites) != 2 || got.Invites[1] != "code-2" {
		t.Fatalf("grant %+v", got)
	}
	// Tampered or misdirected grants are refused.
	bad := bytes.Clone(sealed)
	bad[3] ^= 1
	if _, err := OpenGrant(code, phonePeer, phoneKey, bad); !errors.Is(err, ErrLinkProof) {
		t.Fatalf("tampered grant: %v", err)
	}
	if _, err := OpenGrant(code, []byte("peer-mallory"), phoneKey, sealed); !errors.Is(err, ErrLinkProof) {
		t.Fatalf("grant for another peer: %v", err)
	}
	// A grant certifying another key than ours is refused.
	if _, err := OpenGrant(code, phonePeer, bytes.Repeat([]byte{8}, 32), sealed); !errors.Is(err, ErrMismatch) {
		t.Fatalf("grant for another key: %v", err)
	}
	// Both sides show the same comparison string; another pairing differs.
	a, b := ComparisonString(code.Secret, code.Peer, phonePeer), ComparisonString(code.Secret, code.Peer, []byte("peer-mallory"))
	if len(a) != 7 || a == b {
		t.Fatalf("comparison strings %q %q", a, b)
	}
}

func TestBackupRoundTrip(t *testing.T) {
	alice := newKey(t)
	laptop, _ := alice.Certify(testDevice("laptop"))
	phone, _ := alice.Certify(testDevice("phone"))
	rev, _ := alice.Revoke(phone, time.Unix(1_800_000_100, 0))
	b := &Backup{
		AccountName: "alice", Key: alice, Devices: []*Certificate{laptop, phone}, Revocations: []*Revocation{rev},
		Groups: []Group{{ID: []byte("g1"), Name: "team", Peers: []Peer{{ID: []byte("p1")}, {ID: []byte("p2"), Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}}}},
	}
	for i := range 300 {
		b.Messages = append(b.Messages, Message{Group: []byte("g1"), ID: [16]byte{byte(i), byte(i >> 8)}, Time: time.Unix(1_800_000_000, int64(i)).UTC(), Sender: []byte("alice-id"), Text: strings.Repeat("x", i), Epoch: uint64(i)})
	}
	var buf bytes.Buffer
	if err := WriteBackup(&buf, "correct horse", b, BackupOptions{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("team")) || bytes.Contains(buf.Bytes(), alice.Bytes()) {
		t.Fatal("backup holds plaintext")
	}
	got, err := ReadBackup(bytes.NewReader(buf.Bytes()), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Key.Public().Equal(alice.Public()) || got.AccountName != "alice" || len(got.Devices) != 2 ||
		len(got.Revocations) != 1 || len(got.Groups) != 1 || string(got.Groups[0].Peers[1].ID) != "p2" || got.Groups[0].Peers[1].Addrs[0] != "/ip4/127.0.0.1/tcp/1" || len(got.Messages) != 300 {
		t.Fatalf("restored %+v", got)
	}
	for i, m := range got.Messages {
		w := b.Messages[i]
		if string(m.Group) != string(w.Group) || m.ID != w.ID || !m.Time.Equal(w.Time) || string(m.Sender) != string(w.Sender) || m.Text != w.Text || m.Epoch != w.Epoch {
			t.Fatalf("message %d: %+v, want %+v", i, m, w)
		}
	}

	if _, err := ReadBackup(bytes.NewReader(buf.Bytes()), "wrong"); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	// Damage anywhere in the payload, or a truncation, is ErrDamagedBackup.
	rng := mrand.New(mrand.NewPCG(1, 2))
	hdr := bytes.Index(buf.Bytes(), []byte("\n---")) + 48
	for range 20 {
		bad := bytes.Clone(buf.Bytes())
		bad[hdr+rng.IntN(len(bad)-hdr)] ^= byte(1 + rng.IntN(255))
		if _, err := ReadBackup(bytes.NewReader(bad), "correct horse"); !errors.Is(err, ErrDamagedBackup) {
			t.Fatalf("damaged backup: %v", err)
		}
	}
	if _, err := ReadBackup(bytes.NewReader(buf.Bytes()[:buf.Len()-100]), "correct horse"); !errors.Is(err, ErrDamagedBackup) {
		t.Fatalf("truncated backup: %v", err)
	}
	if _, err := ReadBackup(strings.NewReader("hello"), "x"); !errors.Is(err, ErrDamagedBackup) {
		t.Fatalf("not a backup: %v", err)
	}
}

// A backup whose device list holds another account's certificate is
// refused: the file must agree with its own key.
func TestBackupForeignCertificateRefused(t *testing.T) {
	alice, mallory := newKey(t), newKey(t)
	mc, _ := mallory.Certify(testDevice("laptop"))
	var buf bytes.Buffer
	if err := WriteBackup(&buf, "pw", &Backup{AccountName: "alice", Key: alice, Devices: []*Certificate{mc}}, BackupOptions{WorkFactor: 10}); err != nil {
		t.Fatal(err)
	}
	_, err := ReadBackup(&buf, "pw")
	if !errors.Is(err, ErrDamagedBackup) || !errors.Is(err, ErrOtherAccount) {
		t.Fatalf("foreign certificate in backup: %v", err)
	}
}

func FuzzParseCertificate(f *testing.F) {
	k, _ := Generate(rand.Reader)
	c, _ := k.Certify(testDevice("laptop"))
	f.Add(c.Marshal())
	r, _ := k.Revoke(c, time.Unix(1, 0))
	f.Add(r.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := ParseCertificate(data); err == nil && !bytes.Equal(c.Marshal(), data) {
			t.Fatal("certificate: parse then marshal differs")
		}
		if r, err := ParseRevocation(data); err == nil && !bytes.Equal(r.Marshal(), data) {
			t.Fatal("revocation: parse then marshal differs")
		}
		if r, err := ParseLinkRequest(data); err == nil && !bytes.Equal(r.Marshal(), data) {
			t.Fatal("link request: parse then marshal differs")
		}
	})
}

func TestHistoryBatches(t *testing.T) {
	code, _ := NewLinkCode(rand.Reader, []byte("peer-laptop"), nil, time.Now().Add(time.Minute))
	phone := []byte("peer-phone")
	msgs := []Message{{Group: []byte("g"), ID: [16]byte{1}, Time: time.Unix(5, 6).UTC(), Sender: []byte("s"), Text: "hi", Epoch: 3}}
	sealed, err := SealHistory(code, phone, 7, msgs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenHistory(code, phone, 7, sealed)
	if err != nil || len(got) != 1 || got[0].Text != "hi" || got[0].Epoch != 3 || !got[0].Time.Equal(msgs[0].Time) {
		t.Fatalf("OpenHistory = %+v, %v", got, err)
	}
	// Moved in the stream, meant for another peer, altered, or sealed by
	// someone without the secret: refused.
	other, _ := NewLinkCode(rand.Reader, code.Peer, nil, code.Expires)
	forged, _ := SealHistory(other, phone, 7, msgs)
	bad := bytes.Clone(sealed)
	bad[0] ^= 1
	for name, try := range map[string]func() ([]Message, error){
		"moved":   func() ([]Message, error) { return OpenHistory(code, phone, 8, sealed) },
		"other":   func() ([]Message, error) { return OpenHistory(code, []byte("peer-x"), 7, sealed) },
		"altered": func() ([]Message, error) { return OpenHistory(code, phone, 7, bad) },
		"forged":  func() ([]Message, error) { return OpenHistory(code, phone, 7, forged) },
	} {
		if _, err := try(); !errors.Is(err, ErrForgedHistory) {
			t.Errorf("%s batch: %v", name, err)
		}
	}
}
