package mls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign/ed448"
)

// signatureScheme is one of the signature algorithms of the cipher suites
// (RFC 9420, Section 5.1.2). Keys travel as bytes in the formats the test
// vectors use: EdDSA seeds, ECDSA scalars (big-endian), RFC 8032 public keys
// and uncompressed NIST points.
type signatureScheme interface {
	parsePrivate(raw []byte) (signer, error)
	parsePublic(raw []byte) (verifier, error)
	generate(rand io.Reader) (signer, error)
}

type signer interface {
	sign(msg []byte) ([]byte, error)
	public() []byte
	bytes() []byte
	erase()
}

type verifier interface {
	verify(msg, sig []byte) bool
}

// SigningKey is a parsed signature private key of one suite. Parsing once
// matters: deriving an EdDSA key from its seed costs as much as a signature.
type SigningKey struct {
	suite *Suite
	s     signer
}

// PublicKey returns the encoded SignaturePublicKey.
func (k *SigningKey) PublicKey() []byte { return k.s.public() }

// Bytes returns the encoded private key (seed or scalar).
func (k *SigningKey) Bytes() []byte { return k.s.bytes() }

// Erase zeroes the private key material this package controls.
func (k *SigningKey) Erase() { k.s.erase() }

// VerifyingKey is a parsed signature public key.
type VerifyingKey struct {
	suite *Suite
	raw   []byte
	v     verifier
}

// Bytes returns the encoded SignaturePublicKey.
func (k *VerifyingKey) Bytes() []byte { return k.raw }

// ParseSigningKey parses a private signature key of the suite.
func (s *Suite) ParseSigningKey(raw []byte) (*SigningKey, error) {
	sk, err := s.sig.parsePrivate(raw)
	if err != nil {
		return nil, fmt.Errorf("mls: signature private key: %w", err)
	}
	return &SigningKey{suite: s, s: sk}, nil
}

// GenerateSigningKey draws a fresh signature key from rand.
func (s *Suite) GenerateSigningKey(rand io.Reader) (*SigningKey, error) {
	sk, err := s.sig.generate(rand)
	if err != nil {
		return nil, fmt.Errorf("mls: generating signature key: %w", err)
	}
	return &SigningKey{suite: s, s: sk}, nil
}

// ParseVerifyingKey parses a SignaturePublicKey of the suite.
func (s *Suite) ParseVerifyingKey(raw []byte) (*VerifyingKey, error) {
	v, err := s.sig.parsePublic(raw)
	if err != nil {
		return nil, fmt.Errorf("mls: signature public key: %w", err)
	}
	return &VerifyingKey{suite: s, raw: bytes.Clone(raw), v: v}, nil
}

// signContent is SignContent of RFC 9420, Section 5.1.2.
func signContent(label string, content []byte) ([]byte, error) {
	if len(content) > maxVarint {
		return nil, fmt.Errorf("mls: signed content: %w", ErrTooLarge)
	}
	out := make([]byte, 0, 16+len(label)+len(content))
	out = appendVarint(out, uint32(len("MLS 1.0 ")+len(label)))
	out = append(out, "MLS 1.0 "...)
	out = append(out, label...)
	out = appendVarint(out, uint32(len(content)))
	return append(out, content...), nil
}

// SignWithLabel is RFC 9420, Section 5.1.2. ECDSA signatures are
// deterministic (RFC 6979), so signing needs no randomness.
func (k *SigningKey) SignWithLabel(label string, content []byte) ([]byte, error) {
	msg, err := signContent(label, content)
	if err != nil {
		return nil, err
	}
	sig, err := k.s.sign(msg)
	if err != nil {
		return nil, fmt.Errorf("mls: SignWithLabel: %w", err)
	}
	return sig, nil
}

// VerifyWithLabel is RFC 9420, Section 5.1.2. It returns ErrInvalidSignature
// when the signature does not verify.
func (k *VerifyingKey) VerifyWithLabel(label string, content, signature []byte) error {
	msg, err := signContent(label, content)
	if err != nil {
		return err
	}
	if !k.v.verify(msg, signature) {
		return fmt.Errorf("mls: %q signature: %w", label, ErrInvalidSignature)
	}
	return nil
}

// VerifyWithLabel parses pub and verifies signature over content.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	k, err := s.ParseVerifyingKey(pub)
	if err != nil {
		return err
	}
	return k.VerifyWithLabel(label, content, signature)
}

// --- Ed25519 ---

type ed25519Scheme struct{}

type ed25519Signer struct {
	priv ed25519.PrivateKey
}

func (ed25519Scheme) parsePrivate(raw []byte) (signer, error) {
	if len(raw) != ed25519.SeedSize {
		return nil, fmt.Errorf("ed25519 seed of %d bytes: %w", len(raw), ErrInvalidKey)
	}
	return &ed25519Signer{priv: ed25519.NewKeyFromSeed(raw)}, nil
}

func (e ed25519Scheme) generate(rand io.Reader) (signer, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, err
	}
	defer clear(seed)
	return e.parsePrivate(seed)
}

func (ed25519Scheme) parsePublic(raw []byte) (verifier, error) {
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public key of %d bytes: %w", len(raw), ErrInvalidKey)
	}
	return ed25519Verifier(bytes.Clone(raw)), nil
}

func (k *ed25519Signer) sign(msg []byte) ([]byte, error) { return ed25519.Sign(k.priv, msg), nil }
func (k *ed25519Signer) public() []byte                  { return k.priv[32:] }
func (k *ed25519Signer) bytes() []byte                   { return k.priv.Seed() }
func (k *ed25519Signer) erase()                          { clear(k.priv) }

type ed25519Verifier ed25519.PublicKey

func (v ed25519Verifier) verify(msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(ed25519.PublicKey(v), msg, sig)
}

// --- Ed448 (circl) ---

type ed448Scheme struct{}

type ed448Signer struct {
	priv ed448.PrivateKey
}

func (ed448Scheme) parsePrivate(raw []byte) (signer, error) {
	if len(raw) != ed448.SeedSize {
		return nil, fmt.Errorf("ed448 seed of %d bytes: %w", len(raw), ErrInvalidKey)
	}
	return &ed448Signer{priv: ed448.NewKeyFromSeed(raw)}, nil
}

func (e ed448Scheme) generate(rand io.Reader) (signer, error) {
	seed := make([]byte, ed448.SeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, err
	}
	defer clear(seed)
	return e.parsePrivate(seed)
}

func (ed448Scheme) parsePublic(raw []byte) (verifier, error) {
	if len(raw) != ed448.PublicKeySize {
		return nil, fmt.Errorf("ed448 public key of %d bytes: %w", len(raw), ErrInvalidKey)
	}
	return ed448Verifier(bytes.Clone(raw)), nil
}

// MLS uses pure Ed448 with an empty context (RFC 8032, Section 5.2).
func (k *ed448Signer) sign(msg []byte) ([]byte, error) { return ed448.Sign(k.priv, msg, ""), nil }
func (k *ed448Signer) public() []byte                  { return []byte(k.priv.Public().(ed448.PublicKey)) }
func (k *ed448Signer) bytes() []byte                   { return k.priv.Seed() }
func (k *ed448Signer) erase()                          { clear(k.priv) }

type ed448Verifier ed448.PublicKey

func (v ed448Verifier) verify(msg, sig []byte) bool {
	return len(sig) == ed448.SignatureSize && ed448.Verify(ed448.PublicKey(v), msg, sig, "")
}

// --- ECDSA over NIST curves, DER-encoded signatures (RFC 8446, Section 4.2.3) ---

type ecdsaScheme struct {
	curve elliptic.Curve
	hash  crypto.Hash
}

type ecdsaSigner struct {
	scheme ecdsaScheme
	priv   *ecdsa.PrivateKey
	pub    []byte
	raw    []byte
}

func (e ecdsaScheme) scalarSize() int { return (e.curve.Params().BitSize + 7) / 8 }

func (e ecdsaScheme) parsePrivate(raw []byte) (signer, error) {
	n := e.scalarSize()
	if len(raw) == 0 || len(raw) > n {
		return nil, fmt.Errorf("ecdsa scalar of %d bytes: %w", len(raw), ErrInvalidKey)
	}
	if len(raw) < n { // left-pad short big-endian scalars
		padded := make([]byte, n)
		copy(padded[n-len(raw):], raw)
		raw = padded
	} else {
		raw = bytes.Clone(raw)
	}
	priv, err := ecdsa.ParseRawPrivateKey(e.curve, raw)
	if err != nil {
		return nil, fmt.Errorf("ecdsa scalar: %w: %v", ErrInvalidKey, err)
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("ecdsa public key: %w: %v", ErrInvalidKey, err)
	}
	return &ecdsaSigner{scheme: e, priv: priv, pub: pub, raw: raw}, nil
}

func (e ecdsaScheme) generate(rand io.Reader) (signer, error) {
	// Draw scalars from the injected reader and reject out-of-range ones, so
	// key generation stays reproducible (crypto/ecdsa.GenerateKey ignores
	// its reader since Go 1.26).
	n := e.scalarSize()
	buf := make([]byte, n)
	defer clear(buf)
	excess := uint(n*8 - e.curve.Params().BitSize)
	for range 64 {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return nil, err
		}
		buf[0] &= 0xff >> excess
		if scalarInRange(buf, e.curve.Params().N) {
			return e.parsePrivate(buf)
		}
	}
	return nil, fmt.Errorf("ecdsa: no valid scalar drawn: %w", ErrInvalidKey)
}

func (e ecdsaScheme) parsePublic(raw []byte) (verifier, error) {
	pub, err := ecdsa.ParseUncompressedPublicKey(e.curve, raw)
	if err != nil {
		return nil, fmt.Errorf("ecdsa public key: %w: %v", ErrInvalidKey, err)
	}
	return &ecdsaVerifier{scheme: e, pub: pub}, nil
}

func (e ecdsaScheme) digest(msg []byte) []byte {
	h := e.hash.New()
	h.Write(msg)
	return h.Sum(nil)
}

func (k *ecdsaSigner) sign(msg []byte) ([]byte, error) {
	// A nil reader selects deterministic RFC 6979 nonces.
	return k.priv.Sign(nil, k.scheme.digest(msg), k.scheme.hash)
}
func (k *ecdsaSigner) public() []byte { return k.pub }
func (k *ecdsaSigner) bytes() []byte  { return k.raw }
func (k *ecdsaSigner) erase()         { clear(k.raw); k.priv = nil }

type ecdsaVerifier struct {
	scheme ecdsaScheme
	pub    *ecdsa.PublicKey
}

func (v *ecdsaVerifier) verify(msg, sig []byte) bool {
	return ecdsa.VerifyASN1(v.pub, v.scheme.digest(msg), sig)
}
