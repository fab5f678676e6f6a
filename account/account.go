package account

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Errors callers act on. Every decoder error wraps ErrMalformed.
var (
	// ErrMalformed: bytes that are not a well-formed account object.
	ErrMalformed = errors.New("account: malformed")
	// ErrBadSignature: a certificate or revocation whose signature does
	// not verify under the account key it names.
	ErrBadSignature = errors.New("account: signature does not verify")
	// ErrOtherAccount: a well-signed object of another account than the
	// one expected (a device certificate signed by someone else, a
	// revocation of a device by an account it does not belong to).
	ErrOtherAccount = errors.New("account: signed by another account")
	// ErrMismatch: a certificate that does not certify the key or peer it
	// is presented with.
	ErrMismatch = errors.New("account: certificate is for another device")
)

// PublicKey is an account's Ed25519 public key.
type PublicKey []byte

// Equal reports whether two keys are the same.
func (p PublicKey) Equal(o PublicKey) bool { return bytes.Equal(p, o) }

// Fingerprint is the account's safety number, compared out of band:
// SHA-256("grove account" || key), first 16 bytes as eight groups of four
// hex digits.
func (p PublicKey) Fingerprint() string { return groups(hashOf("grove account", p), 16) }

func hashOf(label string, parts ...[]byte) []byte {
	h := sha256.New()
	h.Write([]byte(label))
	for _, p := range parts {
		var l [2]byte
		l[0], l[1] = byte(len(p)>>8), byte(len(p))
		h.Write(l[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

func groups(sum []byte, n int) string {
	var sb strings.Builder
	for i := 0; i+1 < n; i += 2 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%02x%02x", sum[i], sum[i+1])
	}
	return sb.String()
}

// Key is an account's private key. Every device of the account holds it
// (see the package doc for why).
type Key struct {
	priv ed25519.PrivateKey
}

// Generate makes a new account key from rand.
func Generate(rand io.Reader) (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("account: generate key: %w", err)
	}
	return &Key{priv: priv}, nil
}

// ParseKey reads a key from its 32-byte seed (Bytes).
func ParseKey(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: account key is %d bytes, want %d", ErrMalformed, len(seed), ed25519.SeedSize)
	}
	return &Key{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Bytes is the key's seed; the caller keeps it secret.
func (k *Key) Bytes() []byte { return bytes.Clone(k.priv.Seed()) }

// Public is the account's public key.
func (k *Key) Public() PublicKey { return PublicKey(bytes.Clone(k.priv.Public().(ed25519.PublicKey))) }

// Erase overwrites the private key in memory.
func (k *Key) Erase() { clear(k.priv) }

// Bounds on decoded fields.
const (
	maxName    = 64
	maxSigKey  = 256 // MLS signature keys: Ed448 57, P-521 133 bytes
	maxPeer    = 128
	maxAddrs   = 16
	maxAddrLen = 256
)

// Device is what an account certifies about one of its devices.
type Device struct {
	AccountName  string // the person's name, as members see it
	Name         string // the device's name ("laptop")
	SignatureKey []byte // the device's MLS signature public key
	Peer         []byte // the device's libp2p peer id, as bytes
	Created      time.Time
}

// ID names a device by its MLS signature key: SHA-256("grove device" ||
// key), first 8 bytes in hex. Revocations and device lists use it.
func (d *Device) ID() string {
	return fmt.Sprintf("%x", hashOf("grove device", d.SignatureKey)[:8])
}

// Fingerprint is the device's safety number.
func (d *Device) Fingerprint() string {
	return groups(hashOf("grove device fingerprint", d.SignatureKey, d.Peer), 16)
}

// Certificate is a Device signed by its account.
//
//	struct {
//	    uint8 version = 1;
//	    opaque account<32>;          // Ed25519 public key
//	    opaque account_name<1..64>;
//	    opaque device_name<1..64>;
//	    opaque signature_key<1..256>;
//	    opaque peer<1..128>;
//	    uint64 created;              // Unix seconds
//	    opaque signature<64>;        // over "grove device certificate" || all above
//	} DeviceCertificate;
//
// Lengths are one byte (two for signature_key).
type Certificate struct {
	Account   PublicKey
	Device    Device
	Signature []byte
}

const (
	certVersion  = 1
	certLabel    = "grove device certificate"
	revokeLabel  = "grove device revocation"
	revokeVer    = 1
	maxCertBytes = 1 + 33 + 65 + 65 + 258 + 129 + 8 + 65
)

func (c *Certificate) tbs(b *cryptobyte.Builder) {
	b.AddUint8(certVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Account) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Device.AccountName)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Device.Name)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Device.SignatureKey) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Device.Peer) })
	b.AddUint64(uint64(c.Device.Created.Unix()))
}

func checkDevice(d *Device) error {
	switch {
	case d.AccountName == "" || len(d.AccountName) > maxName:
		return fmt.Errorf("%w: account name of %d bytes", ErrMalformed, len(d.AccountName))
	case d.Name == "" || len(d.Name) > maxName:
		return fmt.Errorf("%w: device name of %d bytes", ErrMalformed, len(d.Name))
	case len(d.SignatureKey) == 0 || len(d.SignatureKey) > maxSigKey:
		return fmt.Errorf("%w: signature key of %d bytes", ErrMalformed, len(d.SignatureKey))
	case len(d.Peer) == 0 || len(d.Peer) > maxPeer:
		return fmt.Errorf("%w: peer id of %d bytes", ErrMalformed, len(d.Peer))
	case d.Created.Unix() < 0:
		return fmt.Errorf("%w: created before 1970", ErrMalformed)
	}
	return nil
}

// Certify signs d as a device of k's account.
func (k *Key) Certify(d Device) (*Certificate, error) {
	d.Created = time.Unix(d.Created.Unix(), 0).UTC()
	if err := checkDevice(&d); err != nil {
		return nil, err
	}
	c := &Certificate{Account: k.Public(), Device: d}
	msg, err := c.signedBytes(certLabel)
	if err != nil {
		return nil, err
	}
	c.Signature = ed25519.Sign(k.priv, msg)
	return c, nil
}

func (c *Certificate) signedBytes(label string) ([]byte, error) {
	b := cryptobyte.NewBuilder([]byte(label))
	c.tbs(b)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return out, nil
}

// Marshal encodes the certificate.
func (c *Certificate) Marshal() []byte {
	b := cryptobyte.NewBuilder(nil)
	c.tbs(b)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Signature) })
	return b.BytesOrPanic()
}

// ParseCertificate decodes a certificate; it checks the form, not the
// signature (Verify).
func ParseCertificate(data []byte) (*Certificate, error) {
	s := cryptobyte.String(data)
	c, err := readCertificate(&s)
	if err != nil {
		return nil, err
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after certificate", ErrMalformed, len(s))
	}
	return c, nil
}

func readCertificate(s *cryptobyte.String) (*Certificate, error) {
	var (
		ver                         uint8
		acct, an, dn, sk, peer, sig cryptobyte.String
		created                     uint64
	)
	if !s.ReadUint8(&ver) {
		return nil, fmt.Errorf("%w: certificate truncated", ErrMalformed)
	}
	if ver != certVersion {
		return nil, fmt.Errorf("%w: certificate version %d", ErrMalformed, ver)
	}
	if !s.ReadUint8LengthPrefixed(&acct) || !s.ReadUint8LengthPrefixed(&an) || !s.ReadUint8LengthPrefixed(&dn) ||
		!s.ReadUint16LengthPrefixed(&sk) || !s.ReadUint8LengthPrefixed(&peer) || !s.ReadUint64(&created) ||
		!s.ReadUint8LengthPrefixed(&sig) {
		return nil, fmt.Errorf("%w: certificate truncated", ErrMalformed)
	}
	if len(acct) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: certificate key or signature length", ErrMalformed)
	}
	if created > 1<<62 {
		return nil, fmt.Errorf("%w: certificate time out of range", ErrMalformed)
	}
	c := &Certificate{
		Account: PublicKey(bytes.Clone(acct)),
		Device: Device{
			AccountName: string(an), Name: string(dn),
			SignatureKey: bytes.Clone(sk), Peer: bytes.Clone(peer),
			Created: time.Unix(int64(created), 0).UTC(),
		},
		Signature: bytes.Clone(sig),
	}
	if err := checkDevice(&c.Device); err != nil {
		return nil, err
	}
	return c, nil
}

// Verify checks the signature under the account key the certificate names.
// It says nothing about whose account that is: VerifyFor and Binds do.
func (c *Certificate) Verify() error {
	msg, err := c.signedBytes(certLabel)
	if err != nil {
		return err
	}
	if len(c.Account) != ed25519.PublicKeySize || !ed25519.Verify(ed25519.PublicKey(c.Account), msg, c.Signature) {
		return fmt.Errorf("%w: device certificate of %q", ErrBadSignature, c.Device.Name)
	}
	return nil
}

// VerifyFor checks that c is a valid certificate of account's: a well-signed
// certificate of another account is ErrOtherAccount.
func (c *Certificate) VerifyFor(account PublicKey) error {
	if err := c.Verify(); err != nil {
		return err
	}
	if !c.Account.Equal(account) {
		return fmt.Errorf("%w: device %q is certified by account %s, not %s", ErrOtherAccount, c.Device.Name, c.Account.Fingerprint(), account.Fingerprint())
	}
	return nil
}

// Binds checks that c is valid and certifies exactly this signature key and
// peer id: a certificate copied from another device's leaf is refused.
func (c *Certificate) Binds(sigKey, peer []byte) error {
	if err := c.Verify(); err != nil {
		return err
	}
	if !bytes.Equal(c.Device.SignatureKey, sigKey) || !bytes.Equal(c.Device.Peer, peer) {
		return fmt.Errorf("%w: %q", ErrMismatch, c.Device.Name)
	}
	return nil
}

// Revocation is an account's signed statement that one of its devices is
// no longer one of its devices.
//
//	struct {
//	    uint8 version = 1;
//	    opaque account<32>;
//	    opaque signature_key<1..256>;   // the revoked device's MLS key
//	    opaque peer<1..128>;            // and its peer id
//	    uint64 revoked;                 // Unix seconds
//	    opaque signature<64>;           // over "grove device revocation" || all above
//	} DeviceRevocation;
type Revocation struct {
	Account      PublicKey
	SignatureKey []byte
	Peer         []byte
	Revoked      time.Time
	Signature    []byte
}

func (r *Revocation) tbs(b *cryptobyte.Builder) {
	b.AddUint8(revokeVer)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.Account) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.SignatureKey) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.Peer) })
	b.AddUint64(uint64(r.Revoked.Unix()))
}

func (r *Revocation) signedBytes() ([]byte, error) {
	b := cryptobyte.NewBuilder([]byte(revokeLabel))
	r.tbs(b)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return out, nil
}

// Revoke signs the revocation of the device c certifies. c must be a
// certificate of k's account.
func (k *Key) Revoke(c *Certificate, at time.Time) (*Revocation, error) {
	if err := c.VerifyFor(k.Public()); err != nil {
		return nil, fmt.Errorf("account: revoke: %w", err)
	}
	r := &Revocation{Account: k.Public(), SignatureKey: bytes.Clone(c.Device.SignatureKey), Peer: bytes.Clone(c.Device.Peer), Revoked: time.Unix(at.Unix(), 0).UTC()}
	msg, err := r.signedBytes()
	if err != nil {
		return nil, err
	}
	r.Signature = ed25519.Sign(k.priv, msg)
	return r, nil
}

// DeviceID is the ID of the revoked device (Device.ID).
func (r *Revocation) DeviceID() string {
	return (&Device{SignatureKey: r.SignatureKey}).ID()
}

// Marshal encodes the revocation.
func (r *Revocation) Marshal() []byte {
	b := cryptobyte.NewBuilder(nil)
	r.tbs(b)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.Signature) })
	return b.BytesOrPanic()
}

// ParseRevocation decodes a revocation; Verify checks it.
func ParseRevocation(data []byte) (*Revocation, error) {
	s := cryptobyte.String(data)
	r, err := readRevocation(&s)
	if err != nil {
		return nil, err
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes after revocation", ErrMalformed, len(s))
	}
	return r, nil
}

func readRevocation(s *cryptobyte.String) (*Revocation, error) {
	var (
		ver                uint8
		acct, sk, peer, sg cryptobyte.String
		at                 uint64
	)
	if !s.ReadUint8(&ver) {
		return nil, fmt.Errorf("%w: revocation truncated", ErrMalformed)
	}
	if ver != revokeVer {
		return nil, fmt.Errorf("%w: revocation version %d", ErrMalformed, ver)
	}
	if !s.ReadUint8LengthPrefixed(&acct) || !s.ReadUint16LengthPrefixed(&sk) || !s.ReadUint8LengthPrefixed(&peer) ||
		!s.ReadUint64(&at) || !s.ReadUint8LengthPrefixed(&sg) {
		return nil, fmt.Errorf("%w: revocation truncated", ErrMalformed)
	}
	switch {
	case len(acct) != ed25519.PublicKeySize || len(sg) != ed25519.SignatureSize:
		return nil, fmt.Errorf("%w: revocation key or signature length", ErrMalformed)
	case len(sk) == 0 || len(sk) > maxSigKey || len(peer) == 0 || len(peer) > maxPeer:
		return nil, fmt.Errorf("%w: revocation device fields", ErrMalformed)
	case at > 1<<62:
		return nil, fmt.Errorf("%w: revocation time out of range", ErrMalformed)
	}
	return &Revocation{
		Account: PublicKey(bytes.Clone(acct)), SignatureKey: bytes.Clone(sk), Peer: bytes.Clone(peer),
		Revoked: time.Unix(int64(at), 0).UTC(), Signature: bytes.Clone(sg),
	}, nil
}

// Verify checks that account signed r: a revocation whose signature does
// not verify is ErrBadSignature, one well signed by another account (which
// cannot revoke this account's devices) is ErrOtherAccount.
func (r *Revocation) Verify(account PublicKey) error {
	msg, err := r.signedBytes()
	if err != nil {
		return err
	}
	if len(r.Account) != ed25519.PublicKeySize || !ed25519.Verify(ed25519.PublicKey(r.Account), msg, r.Signature) {
		return fmt.Errorf("%w: revocation of device %s", ErrBadSignature, r.DeviceID())
	}
	if !r.Account.Equal(account) {
		return fmt.Errorf("%w: revocation of device %s is signed by account %s, not the device's %s", ErrOtherAccount, r.DeviceID(), r.Account.Fingerprint(), account.Fingerprint())
	}
	return nil
}

// Covers reports whether r revokes the device c certifies: same account
// and the same signature key or peer id (a revoked device that makes a new
// MLS key keeps its peer id, and the other way round).
func (r *Revocation) Covers(c *Certificate) bool {
	return r.Account.Equal(c.Account) &&
		(bytes.Equal(r.SignatureKey, c.Device.SignatureKey) || bytes.Equal(r.Peer, c.Device.Peer))
}

// Revocations is a set of verified revocations. The zero value is empty.
// It is not safe for concurrent use.
type Revocations struct {
	list []*Revocation
}

// Add verifies r against the account of the device it revokes and keeps
// it; account is that device's account key as the caller knows it (from the
// certificate in the member's credential, or its own account). It reports
// whether r was new.
func (rs *Revocations) Add(r *Revocation, account PublicKey) (bool, error) {
	if err := r.Verify(account); err != nil {
		return false, err
	}
	for _, o := range rs.list {
		if o.Account.Equal(r.Account) && bytes.Equal(o.SignatureKey, r.SignatureKey) && bytes.Equal(o.Peer, r.Peer) {
			return false, nil
		}
	}
	rs.list = append(rs.list, r)
	return true, nil
}

// Revoked returns the revocation covering c, or nil.
func (rs *Revocations) Revoked(c *Certificate) *Revocation {
	for _, r := range rs.list {
		if r.Covers(c) {
			return r
		}
	}
	return nil
}

// RevokedUnder is Revoked for an account whose key may have been rotated:
// a revocation signed by any key of c's account chain, as rs knows the
// chains, covers c.
func (rs *Revocations) RevokedUnder(c *Certificate, rots *Rotations) *Revocation {
	acct := rots.Current(c.Account)
	for _, r := range rs.list {
		if rots.Current(r.Account).Equal(acct) &&
			(bytes.Equal(r.SignatureKey, c.Device.SignatureKey) || bytes.Equal(r.Peer, c.Device.Peer)) {
			return r
		}
	}
	return nil
}

// List returns the kept revocations, oldest added first.
func (rs *Revocations) List() []*Revocation { return rs.list }
