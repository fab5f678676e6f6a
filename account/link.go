package account

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/hkdf"
)

// Linking a new device (node runs it over a libp2p stream):
//
//  1. The existing device E makes a LinkCode: its peer id and addresses, a
//     16-byte one-time secret, an expiry. The person carries the code to
//     the new device N as text.
//  2. N dials E. libp2p's Noise handshake proves to N that it talks to the
//     peer id in the code and to E which peer id N has; the stream is
//     encrypted.
//  3. N sends a LinkRequest: the code's id, its device name, its MLS
//     signature key and a proof, an HMAC under a key derived from the
//     secret over both peer ids, the name and the key. E consumes the code
//     (one use, right or wrong), checks the proof, certifies N's device
//     and returns a Grant sealed under another key derived from the secret
//     and both peer ids: the account key, N's certificate, the account's
//     devices and revocations.
//  4. Both show the same ComparisonString, derived from the secret and
//     both peer ids; a person who sees different strings was not talking
//     to the device they hold.
//
// Without a PAKE the secret must stay unguessable (128 bits) and short
// lived; it never crosses the wire.

// Link errors.
var (
	// ErrBadLinkCode: text that is not a link code, or a damaged one.
	ErrBadLinkCode = errors.New("account: not a valid link code")
	// ErrLinkProof: a link request or grant that does not authenticate
	// under the code's secret.
	ErrLinkProof = errors.New("account: link request does not match the code")
)

// LinkCodePrefix starts every link code.
const LinkCodePrefix = "grove-link1-"

const linkCodeVersion = 1

// LinkCode is what the person copies from an existing device to a new one.
type LinkCode struct {
	Peer    []byte   // the existing device's peer id
	Addrs   []string // its multiaddresses
	Secret  [16]byte
	Expires time.Time
}

// NewLinkCode makes a code with a fresh secret from rand.
func NewLinkCode(rand io.Reader, peer []byte, addrs []string, expires time.Time) (*LinkCode, error) {
	c := &LinkCode{Peer: bytes.Clone(peer), Addrs: addrs, Expires: time.Unix(expires.Unix(), 0).UTC()}
	if _, err := io.ReadFull(rand, c.Secret[:]); err != nil {
		return nil, fmt.Errorf("account: link secret: %w", err)
	}
	if len(addrs) > maxAddrs {
		c.Addrs = addrs[:maxAddrs]
	}
	return c, nil
}

// ID names the code without revealing its secret: the existing device
// finds the pending code by it and remembers it once used.
func (c *LinkCode) ID() [8]byte {
	var id [8]byte
	copy(id[:], hashOf("grove link id", c.Secret[:]))
	return id
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// String encodes the code as text: the prefix, then base32 of the fields
// and a 4-byte checksum, so a mistyped code is told apart from a wrong one.
func (c *LinkCode) String() string {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(linkCodeVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Peer) })
	b.AddUint8(uint8(len(c.Addrs)))
	for _, a := range c.Addrs {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(a)) })
	}
	b.AddBytes(c.Secret[:])
	b.AddUint64(uint64(c.Expires.Unix()))
	body := b.BytesOrPanic()
	sum := sha256.Sum256(body)
	return LinkCodePrefix + strings.ToLower(b32.EncodeToString(append(body, sum[:4]...)))
}

// ParseLinkCode decodes a code's text.
func ParseLinkCode(text string) (*LinkCode, error) {
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, LinkCodePrefix) {
		return nil, fmt.Errorf("%w: missing %q", ErrBadLinkCode, LinkCodePrefix)
	}
	raw, err := b32.DecodeString(strings.ToUpper(text[len(LinkCodePrefix):]))
	if err != nil || len(raw) < 5 {
		return nil, fmt.Errorf("%w: damaged or mistyped", ErrBadLinkCode)
	}
	body, sum := raw[:len(raw)-4], raw[len(raw)-4:]
	if want := sha256.Sum256(body); !bytes.Equal(want[:4], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch, damaged or mistyped", ErrBadLinkCode)
	}
	s := cryptobyte.String(body)
	var (
		ver, n uint8
		peer   cryptobyte.String
		c      LinkCode
		exp    uint64
	)
	if !s.ReadUint8(&ver) || ver != linkCodeVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadLinkCode, ver)
	}
	if !s.ReadUint8LengthPrefixed(&peer) || len(peer) == 0 || len(peer) > maxPeer || !s.ReadUint8(&n) || int(n) > maxAddrs {
		return nil, fmt.Errorf("%w: bad peer or addresses", ErrBadLinkCode)
	}
	c.Peer = bytes.Clone(peer)
	for range n {
		var a cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&a) || len(a) > maxAddrLen {
			return nil, fmt.Errorf("%w: bad address", ErrBadLinkCode)
		}
		c.Addrs = append(c.Addrs, string(a))
	}
	if !s.CopyBytes(c.Secret[:]) || !s.ReadUint64(&exp) || !s.Empty() || exp > 1<<62 {
		return nil, fmt.Errorf("%w: truncated", ErrBadLinkCode)
	}
	c.Expires = time.Unix(int64(exp), 0).UTC()
	return &c, nil
}

// linkKey derives a key for one purpose from the code's secret and both
// peers: HKDF-SHA256(secret, info = "grove link " || label || vec(existing)
// || vec(new)). Binding both peer ids means a request or grant relayed to
// or from another peer does not verify.
func linkKey(secret [16]byte, label string, existing, newPeer []byte) []byte {
	info := append([]byte("grove link "+label), byte(len(existing)))
	info = append(info, existing...)
	info = append(info, byte(len(newPeer)))
	info = append(info, newPeer...)
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret[:], nil, info), out); err != nil {
		panic("account: hkdf: " + err.Error()) // 32 bytes of SHA-256 HKDF cannot fail
	}
	return out
}

// ComparisonString is the short string both devices show: six decimal
// digits from the secret and both peer ids.
func ComparisonString(secret [16]byte, existing, newPeer []byte) string {
	k := linkKey(secret, "compare", existing, newPeer)
	v := binary.BigEndian.Uint32(k) % 1_000_000
	return fmt.Sprintf("%03d %03d", v/1000, v%1000)
}

// LinkRequest is what the new device sends.
//
//	struct {
//	    opaque code_id[8];
//	    opaque device_name<1..64>;
//	    opaque signature_key<1..256>;
//	    opaque proof[32];   // HMAC-SHA256(linkKey("request"), name || key)
//	} LinkRequest;
type LinkRequest struct {
	CodeID       [8]byte
	DeviceName   string
	SignatureKey []byte
	Proof        [32]byte
}

func (r *LinkRequest) mac(secret [16]byte, existing, newPeer []byte) []byte {
	m := hmac.New(sha256.New, linkKey(secret, "request", existing, newPeer))
	m.Write([]byte{byte(len(r.DeviceName))})
	m.Write([]byte(r.DeviceName))
	m.Write(r.SignatureKey)
	return m.Sum(nil)
}

// NewLinkRequest builds the new device's request for code.
func NewLinkRequest(code *LinkCode, newPeer []byte, deviceName string, sigKey []byte) *LinkRequest {
	r := &LinkRequest{CodeID: code.ID(), DeviceName: deviceName, SignatureKey: bytes.Clone(sigKey)}
	copy(r.Proof[:], r.mac(code.Secret, code.Peer, newPeer))
	return r
}

// Check verifies the request's proof for code, coming from newPeer (the
// peer id the transport authenticated).
func (r *LinkRequest) Check(code *LinkCode, newPeer []byte) error {
	if r.CodeID != code.ID() || !hmac.Equal(r.Proof[:], r.mac(code.Secret, code.Peer, newPeer)) {
		return ErrLinkProof
	}
	return nil
}

// Marshal encodes the request.
func (r *LinkRequest) Marshal() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes(r.CodeID[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(r.DeviceName)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.SignatureKey) })
	b.AddBytes(r.Proof[:])
	return b.BytesOrPanic()
}

// ParseLinkRequest decodes a request.
func ParseLinkRequest(data []byte) (*LinkRequest, error) {
	s := cryptobyte.String(data)
	var r LinkRequest
	var name, key cryptobyte.String
	if !s.CopyBytes(r.CodeID[:]) || !s.ReadUint8LengthPrefixed(&name) || !s.ReadUint16LengthPrefixed(&key) ||
		!s.CopyBytes(r.Proof[:]) || !s.Empty() {
		return nil, fmt.Errorf("%w: link request", ErrMalformed)
	}
	if len(name) == 0 || len(name) > maxName || len(key) == 0 || len(key) > maxSigKey {
		return nil, fmt.Errorf("%w: link request fields", ErrMalformed)
	}
	r.DeviceName, r.SignatureKey = string(name), bytes.Clone(key)
	return &r, nil
}

// Grant is what the existing device returns: everything a device of the
// account needs.
type Grant struct {
	Key         *Key
	Certificate *Certificate   // the new device's
	Devices     []*Certificate // the account's other devices
	Revocations []*Revocation
	// Invites are codes by which the new device joins the account's
	// groups; opaque here (node's invite codes).
	Invites []string
}

const maxListed = 1024

// Marshal encodes the grant in the clear (Seal encrypts it).
func (g *Grant) marshal() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddBytes(g.Key.priv.Seed())
	addCerts(b, append([]*Certificate{g.Certificate}, g.Devices...))
	addRevocations(b, g.Revocations)
	b.AddUint16(uint16(len(g.Invites)))
	for _, iv := range g.Invites {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(iv)) })
	}
	return b.BytesOrPanic()
}

func addCerts(b *cryptobyte.Builder, cs []*Certificate) {
	b.AddUint16(uint16(len(cs)))
	for _, c := range cs {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Marshal()) })
	}
}

func addRevocations(b *cryptobyte.Builder, rs []*Revocation) {
	b.AddUint16(uint16(len(rs)))
	for _, r := range rs {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(r.Marshal()) })
	}
}

func readCerts(s *cryptobyte.String) ([]*Certificate, error) {
	var n uint16
	if !s.ReadUint16(&n) || n > maxListed {
		return nil, fmt.Errorf("%w: certificate list", ErrMalformed)
	}
	var out []*Certificate
	for range n {
		var one cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&one) {
			return nil, fmt.Errorf("%w: certificate list truncated", ErrMalformed)
		}
		c, err := ParseCertificate(one)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func readRevocations(s *cryptobyte.String) ([]*Revocation, error) {
	var n uint16
	if !s.ReadUint16(&n) || n > maxListed {
		return nil, fmt.Errorf("%w: revocation list", ErrMalformed)
	}
	var out []*Revocation
	for range n {
		var one cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&one) {
			return nil, fmt.Errorf("%w: revocation list truncated", ErrMalformed)
		}
		r, err := ParseRevocation(one)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Seal encrypts the grant for the new device newPeer under code's secret
// (ChaCha20-Poly1305; the key is used once, so the nonce is zero).
func (g *Grant) Seal(code *LinkCode, newPeer []byte) []byte {
	aead, _ := chacha20poly1305.New(linkKey(code.Secret, "grant", code.Peer, newPeer))
	pt := g.marshal()
	defer clear(pt)
	return aead.Seal(nil, make([]byte, aead.NonceSize()), pt, nil)
}

// OpenGrant decrypts and checks a grant: it must decrypt under the code's
// secret, every certificate and revocation must verify under the granted
// account key, and the new device's certificate must certify sigKey and
// newPeer.
func OpenGrant(code *LinkCode, newPeer, sigKey, sealed []byte) (*Grant, error) {
	aead, _ := chacha20poly1305.New(linkKey(code.Secret, "grant", code.Peer, newPeer))
	pt, err := aead.Open(nil, make([]byte, aead.NonceSize()), sealed, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: grant does not decrypt", ErrLinkProof)
	}
	defer clear(pt)
	s := cryptobyte.String(pt)
	var seed []byte
	if !s.ReadBytes(&seed, 32) {
		return nil, fmt.Errorf("%w: grant truncated", ErrMalformed)
	}
	k, err := ParseKey(seed)
	if err != nil {
		return nil, err
	}
	certs, err := readCerts(&s)
	if err != nil {
		return nil, err
	}
	revs, err := readRevocations(&s)
	if err != nil {
		return nil, err
	}
	var ni uint16
	if !s.ReadUint16(&ni) || ni > maxListed {
		return nil, fmt.Errorf("%w: grant invites", ErrMalformed)
	}
	var invites []string
	for range ni {
		var iv cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&iv) {
			return nil, fmt.Errorf("%w: grant invite", ErrMalformed)
		}
		invites = append(invites, string(iv))
	}
	if !s.Empty() || len(certs) == 0 {
		return nil, fmt.Errorf("%w: grant", ErrMalformed)
	}
	g := &Grant{Key: k, Certificate: certs[0], Devices: certs[1:], Revocations: revs, Invites: invites}
	if err := g.Certificate.Binds(sigKey, newPeer); err != nil {
		return nil, err
	}
	if err := g.Certificate.VerifyFor(k.Public()); err != nil {
		return nil, err
	}
	for _, c := range g.Devices {
		if err := c.VerifyFor(k.Public()); err != nil {
			return nil, err
		}
	}
	for _, r := range g.Revocations {
		if err := r.Verify(k.Public()); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// History travels after the grant, in batches each sealed under a key
// derived from the code's secret and both peers, with the batch's index as
// the nonce: a batch that was forged, altered, replayed from another link
// or moved to another place in the stream does not open.

// ErrForgedHistory: a history batch that does not open under the link.
var ErrForgedHistory = errors.New("account: history batch does not authenticate")

// MaxHistoryBatch bounds the encoded size of one batch.
const MaxHistoryBatch = 768 << 10

// SealHistory seals batch number index of messages for newPeer.
func SealHistory(code *LinkCode, newPeer []byte, index uint64, msgs []Message) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddUint32(uint32(len(msgs)))
	for i := range msgs {
		m, err := marshalMessage(&msgs[i])
		if err != nil {
			return nil, err
		}
		b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(m) })
	}
	pt, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("account: history batch: %w", err)
	}
	aead, _ := chacha20poly1305.New(linkKey(code.Secret, "history", code.Peer, newPeer))
	nonce := make([]byte, aead.NonceSize())
	binary.BigEndian.PutUint64(nonce[4:], index)
	return aead.Seal(nil, nonce, pt, nil), nil
}

// OpenHistory opens batch number index.
func OpenHistory(code *LinkCode, newPeer []byte, index uint64, sealed []byte) ([]Message, error) {
	aead, _ := chacha20poly1305.New(linkKey(code.Secret, "history", code.Peer, newPeer))
	nonce := make([]byte, aead.NonceSize())
	binary.BigEndian.PutUint64(nonce[4:], index)
	pt, err := aead.Open(nil, nonce, sealed, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: batch %d", ErrForgedHistory, index)
	}
	s := cryptobyte.String(pt)
	var n uint32
	if !s.ReadUint32(&n) || n > MaxHistoryBatch {
		return nil, fmt.Errorf("%w: history batch", ErrMalformed)
	}
	out := make([]Message, 0, min(n, 4096))
	for range n {
		var one cryptobyte.String
		if !readUint32Prefixed(&s, &one) {
			return nil, fmt.Errorf("%w: history batch truncated", ErrMalformed)
		}
		m, err := parseMessage(one)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		out = append(out, m)
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: history batch trailing bytes", ErrMalformed)
	}
	return out, nil
}
