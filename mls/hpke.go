package mls

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"

	"github.com/cloudflare/circl/kem"
)

// HPKEPrivateKey is a parsed HPKE private key together with its public key.
type HPKEPrivateKey struct {
	raw []byte // SerializePrivateKey form, RFC 9180, Section 7.1.2
	key kem.PrivateKey
	pub []byte
}

// Bytes returns the serialised private key. The caller must not modify it.
func (k *HPKEPrivateKey) Bytes() []byte { return k.raw }

// PublicKey returns the encoded HPKE public key.
func (k *HPKEPrivateKey) PublicKey() []byte { return k.pub }

// Erase zeroes the serialised private key. The parsed key inside the KEM
// library cannot be reached, so callers also drop their reference.
func (k *HPKEPrivateKey) Erase() {
	clear(k.raw)
	k.key = nil
}

func (s *Suite) hpkeSuiteID() []byte {
	// RFC 9180, Section 4.1: suite_id = concat("KEM", I2OSP(kem_id, 2)).
	return binary.BigEndian.AppendUint16([]byte("KEM"), uint16(s.kemID))
}

func (s *Suite) kemLabeledExtract(salt []byte, label string, ikm []byte) []byte {
	labeled := append([]byte("HPKE-v1"), s.hpkeSuiteID()...)
	labeled = append(labeled, label...)
	labeled = append(labeled, ikm...)
	if len(salt) == 0 {
		salt = make([]byte, s.kemHash().Size())
	}
	return macWith(s.kemHash, salt, labeled)
}

func (s *Suite) kemLabeledExpand(prk []byte, label string, info []byte, length int) []byte {
	labeled := binary.BigEndian.AppendUint16(nil, uint16(length))
	labeled = append(labeled, "HPKE-v1"...)
	labeled = append(labeled, s.hpkeSuiteID()...)
	labeled = append(labeled, label...)
	labeled = append(labeled, info...)
	out, err := expand(s.kemHash, prk, labeled, length)
	if err != nil {
		panic("mls: KEM expand length out of range") // lengths are constants of the suite
	}
	return out
}

// DeriveKeyPair is RFC 9180, Section 7.1.3, for any input length. MLS
// derives node keys from Nh-byte secrets, which circl's own DeriveKeyPair
// rejects (it panics unless the seed is exactly the KEM's seed size, which
// differs from Nh for X448 and P-521), so the derivation is done here and
// only the resulting scalar is handed to circl.
func (s *Suite) DeriveKeyPair(ikm []byte) (*HPKEPrivateKey, error) {
	dkpPRK := s.kemLabeledExtract(nil, "dkp_prk", ikm)
	if s.curve == nil {
		sk := s.kemLabeledExpand(dkpPRK, "sk", nil, s.nsk)
		return s.ParseHPKEPrivateKey(sk)
	}
	for ctr := 0; ctr <= 255; ctr++ {
		sk := s.kemLabeledExpand(dkpPRK, "candidate", []byte{byte(ctr)}, s.nsk)
		sk[0] &= s.bitmask
		if key, err := s.ParseHPKEPrivateKey(sk); err == nil {
			return key, nil
		}
	}
	return nil, fmt.Errorf("mls: DeriveKeyPair: no valid scalar: %w", ErrInvalidKey)
}

// GenerateHPKEKeyPair draws a fresh key pair from rand.
func (s *Suite) GenerateHPKEKeyPair(rand io.Reader) (*HPKEPrivateKey, error) {
	seed := make([]byte, s.kem.SeedSize())
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("mls: reading randomness: %w", err)
	}
	defer clear(seed)
	return s.DeriveKeyPair(seed)
}

// ParseHPKEPrivateKey parses a serialised private key. NIST-curve scalars
// shorter than Nsk (for example 65-byte P-521 keys from some encoders) are
// left-padded with zeros.
func (s *Suite) ParseHPKEPrivateKey(raw []byte) (*HPKEPrivateKey, error) {
	if s.curve != nil && len(raw) < s.nsk && len(raw) > 0 {
		padded := make([]byte, s.nsk)
		copy(padded[s.nsk-len(raw):], raw)
		raw = padded
	} else {
		raw = bytes.Clone(raw)
	}
	key, err := s.kem.UnmarshalBinaryPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("mls: HPKE private key: %w: %v", ErrInvalidKey, err)
	}
	pub, err := key.Public().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("mls: HPKE public key: %w: %v", ErrInvalidKey, err)
	}
	return &HPKEPrivateKey{raw: raw, key: key, pub: pub}, nil
}

// ValidateHPKEPublicKey reports whether pub encodes a valid public key of the suite.
func (s *Suite) ValidateHPKEPublicKey(pub []byte) error {
	if _, err := s.kem.UnmarshalBinaryPublicKey(pub); err != nil {
		return fmt.Errorf("mls: HPKE public key: %w: %v", ErrInvalidKey, err)
	}
	return nil
}

// encryptContext is EncryptContext of RFC 9420, Section 5.1.3.
func encryptContext(label string, context []byte) []byte {
	out := make([]byte, 0, 16+len(label)+len(context))
	out = appendVarint(out, uint32(len("MLS 1.0 ")+len(label)))
	out = append(out, "MLS 1.0 "...)
	out = append(out, label...)
	out = appendVarint(out, uint32(len(context)))
	return append(out, context...)
}

// EncryptWithLabel is RFC 9420, Section 5.1.3: SealBase(PublicKey,
// EncryptContext, "", Plaintext). rand supplies the ephemeral key.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte, rand io.Reader) (kemOutput, ciphertext []byte, err error) {
	if len(context) > maxVarint {
		return nil, nil, fmt.Errorf("mls: EncryptWithLabel context: %w", ErrTooLarge)
	}
	pk, err := s.kem.UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: EncryptWithLabel: %w: %v", ErrInvalidKey, err)
	}
	sender, err := s.hpke.NewSender(pk, encryptContext(label, context))
	if err != nil {
		return nil, nil, fmt.Errorf("mls: EncryptWithLabel: %w", err)
	}
	enc, sealer, err := sender.Setup(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: EncryptWithLabel: %w", err)
	}
	ct, err := sealer.Seal(plaintext, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: EncryptWithLabel: %w", err)
	}
	return enc, ct, nil
}

// DecryptWithLabel is RFC 9420, Section 5.1.3: OpenBase(KEMOutput,
// PrivateKey, EncryptContext, "", Ciphertext).
func (s *Suite) DecryptWithLabel(priv *HPKEPrivateKey, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	if priv == nil || priv.key == nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel: no private key: %w", ErrInvalidKey)
	}
	if len(context) > maxVarint {
		return nil, fmt.Errorf("mls: DecryptWithLabel context: %w", ErrTooLarge)
	}
	receiver, err := s.hpke.NewReceiver(priv.key, encryptContext(label, context))
	if err != nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel: %w", err)
	}
	opener, err := receiver.Setup(kemOutput)
	if err != nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel: %w: %v", ErrDecrypt, err)
	}
	pt, err := opener.Open(ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel: %w: %v", ErrDecrypt, err)
	}
	return pt, nil
}

// scalarInRange reports 0 < k < n; used by signature key generation.
func scalarInRange(k []byte, n *big.Int) bool {
	v := new(big.Int).SetBytes(k)
	return v.Sign() > 0 && v.Cmp(n) < 0
}

// equalConstantTime compares secrets without leaking where they differ.
func equalConstantTime(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
