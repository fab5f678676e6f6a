package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// KeyPackage is RFC 9420, Section 10: a pre-published, signed offer to be
// added to a group. Validation (Section 10.1) belongs to the group layer;
// this file encodes, decodes, signs and verifies.
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte // HPKEPublicKey
	LeafNode    LeafNode
	Extensions  Extensions
	Signature   []byte
}

// marshalTBS writes KeyPackageTBS, the signed prefix of a KeyPackage.
func (kp *KeyPackage) marshalTBS(b *cryptobyte.Builder) {
	b.AddUint16(uint16(kp.Version))
	b.AddUint16(uint16(kp.CipherSuite))
	addVarBytes(b, kp.InitKey)
	kp.LeafNode.marshal(b)
	kp.Extensions.marshal(b)
}

func (kp *KeyPackage) marshal(b *cryptobyte.Builder) {
	kp.marshalTBS(b)
	addVarBytes(b, kp.Signature)
}

func (kp *KeyPackage) unmarshal(s *cryptobyte.String) bool {
	*kp = KeyPackage{}
	return s.ReadUint16((*uint16)(&kp.Version)) &&
		s.ReadUint16((*uint16)(&kp.CipherSuite)) &&
		readVarBytes(s, &kp.InitKey) &&
		kp.LeafNode.unmarshal(s) &&
		kp.Extensions.unmarshal(s) &&
		readVarBytes(s, &kp.Signature)
}

// MarshalBinary encodes the KeyPackage.
func (kp *KeyPackage) MarshalBinary() ([]byte, error) { return marshal(kp.marshal) }

// UnmarshalKeyPackage decodes one KeyPackage, rejecting trailing bytes.
func UnmarshalKeyPackage(data []byte) (*KeyPackage, error) {
	kp := new(KeyPackage)
	if err := unmarshalAll("KeyPackage", data, kp.unmarshal); err != nil {
		return nil, err
	}
	return kp, nil
}

const keyPackageTBSLabel = "KeyPackageTBS"

// Sign sets the signature over KeyPackageTBS (RFC 9420, Section 10) with the
// key matching LeafNode.SignatureKey.
func (kp *KeyPackage) Sign(key *SigningKey) error {
	tbs, err := marshal(kp.marshalTBS)
	if err != nil {
		return fmt.Errorf("mls: signing key package: %w", err)
	}
	sig, err := key.SignWithLabel(keyPackageTBSLabel, tbs)
	if err != nil {
		return fmt.Errorf("mls: signing key package: %w", err)
	}
	kp.Signature = sig
	return nil
}

// VerifySignature checks the KeyPackage signature against the leaf node's
// signature key (RFC 9420, Section 10.1).
func (kp *KeyPackage) VerifySignature(s *Suite) error {
	tbs, err := marshal(kp.marshalTBS)
	if err != nil {
		return fmt.Errorf("mls: key package: %w", err)
	}
	if err := s.VerifyWithLabel(kp.LeafNode.SignatureKey, keyPackageTBSLabel, tbs, kp.Signature); err != nil {
		return fmt.Errorf("mls: key package signature: %w", err)
	}
	return nil
}

// KeyPackageRef computes RefHash("MLS 1.0 KeyPackage Reference", KeyPackage)
// (RFC 9420, Section 5.2).
func (s *Suite) KeyPackageRef(kp *KeyPackage) ([]byte, error) {
	enc, err := kp.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return s.RefHash("MLS 1.0 KeyPackage Reference", enc), nil
}
