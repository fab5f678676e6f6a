package mls

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/cloudflare/circl/hpke"
	"github.com/cloudflare/circl/kem"
	"golang.org/x/crypto/chacha20poly1305"
)

// CipherSuite is the two-byte identifier of an MLS cipher suite
// (RFC 9420, Section 17.1).
type CipherSuite uint16

// The cipher suites of RFC 9420, Section 17.1. The names follow the RFC.
const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        CipherSuite = 0x0001
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             CipherSuite = 0x0002
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 CipherSuite = 0x0003
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            CipherSuite = 0x0004
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             CipherSuite = 0x0005
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     CipherSuite = 0x0006
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             CipherSuite = 0x0007
)

// CipherSuites lists every suite this package implements, in numeric order.
func CipherSuites() []CipherSuite {
	return []CipherSuite{1, 2, 3, 4, 5, 6, 7}
}

func (cs CipherSuite) String() string {
	switch cs {
	case MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
	case MLS_128_DHKEMP256_AES128GCM_SHA256_P256:
		return "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"
	case MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519"
	case MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448:
		return "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"
	case MLS_256_DHKEMP521_AES256GCM_SHA512_P521:
		return "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"
	case MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448:
		return "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448"
	case MLS_256_DHKEMP384_AES256GCM_SHA384_P384:
		return "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(cs))
}

// Suite bundles the primitives of one cipher suite. Values are immutable and
// shared; obtain one with CipherSuite.Suite.
type Suite struct {
	id      CipherSuite
	newHash func() hash.Hash
	nh      int // hash and KDF output size

	aeadID hpke.AEAD
	nk, nn int // AEAD key and nonce sizes

	kemID   hpke.KEM
	kem     kem.Scheme
	hpke    hpke.Suite
	kemHash func() hash.Hash // the KEM's own KDF, for DeriveKeyPair
	nsk     int              // serialised private key size
	curve   *ecdh.Curve      // nil for X25519/X448
	bitmask byte             // RFC 9180, Section 7.1.3

	sig signatureScheme
}

// The table is built once and never mutated, so sharing it is safe.
var suites = func() map[CipherSuite]*Suite {
	p256, p384, p521 := ecdh.P256(), ecdh.P384(), ecdh.P521()
	mk := func(id CipherSuite, h func() hash.Hash, aead hpke.AEAD, nk int, kemID hpke.KEM, kdf hpke.KDF, kemHash func() hash.Hash, nsk int, curve *ecdh.Curve, bitmask byte, sig signatureScheme) *Suite {
		return &Suite{
			id: id, newHash: h, nh: h().Size(),
			aeadID: aead, nk: nk, nn: 12,
			kemID: kemID, kem: kemID.Scheme(), hpke: hpke.NewSuite(kemID, kdf, aead),
			kemHash: kemHash, nsk: nsk, curve: curve, bitmask: bitmask,
			sig: sig,
		}
	}
	return map[CipherSuite]*Suite{
		0x0001: mk(0x0001, sha256.New, hpke.AEAD_AES128GCM, 16, hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, sha256.New, 32, nil, 0, ed25519Scheme{}),
		0x0002: mk(0x0002, sha256.New, hpke.AEAD_AES128GCM, 16, hpke.KEM_P256_HKDF_SHA256, hpke.KDF_HKDF_SHA256, sha256.New, 32, &p256, 0xff, ecdsaScheme{elliptic.P256(), crypto.SHA256}),
		0x0003: mk(0x0003, sha256.New, hpke.AEAD_ChaCha20Poly1305, 32, hpke.KEM_X25519_HKDF_SHA256, hpke.KDF_HKDF_SHA256, sha256.New, 32, nil, 0, ed25519Scheme{}),
		0x0004: mk(0x0004, sha512.New, hpke.AEAD_AES256GCM, 32, hpke.KEM_X448_HKDF_SHA512, hpke.KDF_HKDF_SHA512, sha512.New, 56, nil, 0, ed448Scheme{}),
		0x0005: mk(0x0005, sha512.New, hpke.AEAD_AES256GCM, 32, hpke.KEM_P521_HKDF_SHA512, hpke.KDF_HKDF_SHA512, sha512.New, 66, &p521, 0x01, ecdsaScheme{elliptic.P521(), crypto.SHA512}),
		0x0006: mk(0x0006, sha512.New, hpke.AEAD_ChaCha20Poly1305, 32, hpke.KEM_X448_HKDF_SHA512, hpke.KDF_HKDF_SHA512, sha512.New, 56, nil, 0, ed448Scheme{}),
		0x0007: mk(0x0007, sha512.New384, hpke.AEAD_AES256GCM, 32, hpke.KEM_P384_HKDF_SHA384, hpke.KDF_HKDF_SHA384, sha512.New384, 48, &p384, 0xff, ecdsaScheme{elliptic.P384(), crypto.SHA384}),
	}
}()

// Suite returns the primitives of cs, or ErrUnsupportedCipherSuite.
func (cs CipherSuite) Suite() (*Suite, error) {
	s, ok := suites[cs]
	if !ok {
		return nil, fmt.Errorf("mls: %v: %w", cs, ErrUnsupportedCipherSuite)
	}
	return s, nil
}

// ID is the suite's identifier.
func (s *Suite) ID() CipherSuite { return s.id }

// HashSize is Nh, the output size of the suite's hash and KDF.
func (s *Suite) HashSize() int { return s.nh }

// AEADKeySize and AEADNonceSize are Nk and Nn of the suite's AEAD.
func (s *Suite) AEADKeySize() int   { return s.nk }
func (s *Suite) AEADNonceSize() int { return s.nn }

// Hash returns the suite's hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(nil)
}

// RefHash computes a hash-based identifier (RFC 9420, Section 5.2).
func (s *Suite) RefHash(label string, value []byte) []byte {
	h := s.newHash()
	var hdr [4]byte
	h.Write(appendVarint(hdr[:0], uint32(len(label))))
	h.Write([]byte(label))
	h.Write(appendVarint(hdr[:0], uint32(len(value))))
	h.Write(value)
	return h.Sum(nil)
}

// MAC is the suite's HMAC, used for membership tags and confirmation tags.
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// Extract is HKDF-Extract with the suite's hash (RFC 5869, Section 2.2).
func (s *Suite) Extract(salt, ikm []byte) []byte {
	if len(salt) == 0 {
		salt = make([]byte, s.nh)
	}
	return s.MAC(salt, ikm)
}

// expand is HKDF-Expand (RFC 5869, Section 2.3) over an info assembled by
// the caller, written directly to avoid the string conversions of
// crypto/hkdf on the hot path of the secret tree.
func expand(newHash func() hash.Hash, prk, info []byte, length int) ([]byte, error) {
	nh := newHash().Size()
	if length > 255*nh {
		return nil, fmt.Errorf("mls: expand to %d bytes: %w", length, ErrTooLarge)
	}
	out := make([]byte, 0, length+nh)
	m := hmac.New(newHash, prk)
	var prev []byte
	for ctr := byte(1); len(out) < length; ctr++ {
		m.Reset()
		m.Write(prev)
		m.Write(info)
		m.Write([]byte{ctr})
		prev = m.Sum(out)[len(out):]
		out = out[:len(out)+nh]
	}
	return out[:length], nil
}

// ExpandWithLabel is RFC 9420, Section 5.1:
//
//	ExpandWithLabel(Secret, Label, Context, Length) =
//	    KDF.Expand(Secret, KDFLabel, Length)
//
// where KDFLabel is { uint16 length; opaque label<V> = "MLS 1.0 " + Label;
// opaque context<V>; }.
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("mls: ExpandWithLabel length %d: %w", length, ErrTooLarge)
	}
	if len(context) > maxVarint {
		return nil, fmt.Errorf("mls: ExpandWithLabel context: %w", ErrTooLarge)
	}
	var buf [128]byte
	info := binary.BigEndian.AppendUint16(buf[:0], uint16(length))
	info = appendVarint(info, uint32(len("MLS 1.0 ")+len(label)))
	info = append(info, "MLS 1.0 "...)
	info = append(info, label...)
	info = appendVarint(info, uint32(len(context)))
	info = append(info, context...)
	return expand(s.newHash, secret, info, length)
}

// DeriveSecret is ExpandWithLabel(Secret, Label, "", KDF.Nh)
// (RFC 9420, Section 5.1).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return s.ExpandWithLabel(secret, label, nil, s.nh)
}

// DeriveTreeSecret is ExpandWithLabel(Secret, Label, Generation, Length)
// with the generation as a uint32 (RFC 9420, Section 9).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	var ctx [4]byte
	binary.BigEndian.PutUint32(ctx[:], generation)
	return s.ExpandWithLabel(secret, label, ctx[:], length)
}

// NewAEAD returns the suite's AEAD keyed with key (Nk bytes).
func (s *Suite) NewAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != s.nk {
		return nil, fmt.Errorf("mls: AEAD key of %d bytes, want %d: %w", len(key), s.nk, ErrInvalidKey)
	}
	switch s.aeadID {
	case hpke.AEAD_ChaCha20Poly1305:
		return chacha20poly1305.New(key)
	default:
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("mls: AES key: %w", err)
		}
		return cipher.NewGCM(block)
	}
}

func macWith(newHash func() hash.Hash, key, data []byte) []byte {
	m := hmac.New(newHash, key)
	m.Write(data)
	return m.Sum(nil)
}
