package mls

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// ExtensionLastResort marks a KeyPackage that may be used more than once,
// because its owner has no other left (the last_resort extension,
// IANA MLS Extension Types, 0x000A).
const ExtensionLastResort ExtensionType = 0x000a

// KeyPackageBundle is a KeyPackage with the private keys that go with it.
// The owner keeps it until the KeyPackage is used to join (then erases the
// init key) or expires.
type KeyPackageBundle struct {
	KeyPackage    KeyPackage
	InitKey       *HPKEPrivateKey
	EncryptionKey *HPKEPrivateKey
	SigningKey    *SigningKey
}

// Erase zeroes the bundle's private keys except the signing key, which the
// caller owns.
func (b *KeyPackageBundle) Erase() {
	b.InitKey.Erase()
	b.EncryptionKey.Erase()
}

// KeyPackageParams are the inputs of NewKeyPackage.
type KeyPackageParams struct {
	Suite      CipherSuite
	Credential Credential
	SigningKey *SigningKey
	// NotBefore and NotAfter bound the lifetime (RFC 9420, Section 7.2).
	NotBefore, NotAfter time.Time
	// Capabilities lists what the client supports beyond the defaults;
	// versions, the suite and the credential's type are added, default
	// extensions and proposal types are never listed (Section 7.2).
	Capabilities Capabilities
	// LeafExtensions go into the leaf node, Extensions into the KeyPackage.
	LeafExtensions Extensions
	Extensions     Extensions
	// LastResort adds the last_resort extension (and lists it in capabilities).
	LastResort bool
	Rand       io.Reader
}

// NewKeyPackage creates and signs a KeyPackage with fresh init and leaf
// encryption keys (RFC 9420, Section 10).
func NewKeyPackage(p *KeyPackageParams) (*KeyPackageBundle, error) {
	s, err := p.Suite.Suite()
	if err != nil {
		return nil, err
	}
	initKey, err := s.GenerateHPKEKeyPair(p.Rand)
	if err != nil {
		return nil, err
	}
	encKey, err := s.GenerateHPKEKeyPair(p.Rand)
	if err != nil {
		initKey.Erase()
		return nil, err
	}
	caps := p.Capabilities
	caps = Capabilities{
		Versions:     appendMissing(cloneSlice(caps.Versions), ProtocolVersionMLS10),
		CipherSuites: appendMissing(cloneSlice(caps.CipherSuites), p.Suite),
		Credentials:  appendMissing(cloneSlice(caps.Credentials), p.Credential.Type),
	}
	for _, e := range p.Capabilities.Extensions {
		if !e.IsDefault() {
			caps.Extensions = appendMissing(caps.Extensions, e)
		}
	}
	for _, t := range p.Capabilities.Proposals {
		if !t.IsDefault() {
			caps.Proposals = appendMissing(caps.Proposals, t)
		}
	}
	exts := cloneExtensions(p.Extensions)
	if p.LastResort {
		if _, ok := exts.Find(ExtensionLastResort); !ok {
			exts = append(exts, Extension{Type: ExtensionLastResort, Data: []byte{}})
		}
		caps.Extensions = appendMissing(caps.Extensions, ExtensionLastResort)
	}
	for _, e := range p.LeafExtensions {
		if !e.Type.IsDefault() {
			caps.Extensions = appendMissing(caps.Extensions, e.Type)
		}
	}
	kp := KeyPackage{
		Version:     ProtocolVersionMLS10,
		CipherSuite: p.Suite,
		InitKey:     bytes.Clone(initKey.PublicKey()),
		LeafNode: LeafNode{
			EncryptionKey: bytes.Clone(encKey.PublicKey()),
			SignatureKey:  bytes.Clone(p.SigningKey.PublicKey()),
			Credential:    p.Credential,
			Capabilities:  caps,
			Source:        LeafNodeSourceKeyPackage,
			Lifetime:      Lifetime{NotBefore: unixSeconds(p.NotBefore), NotAfter: unixSeconds(p.NotAfter)},
			Extensions:    cloneExtensions(p.LeafExtensions),
		},
		Extensions: exts,
	}
	if err := kp.LeafNode.Sign(p.SigningKey, nil, 0); err != nil {
		return nil, err
	}
	if err := kp.Sign(p.SigningKey); err != nil {
		return nil, err
	}
	return &KeyPackageBundle{KeyPackage: kp, InitKey: initKey, EncryptionKey: encKey, SigningKey: p.SigningKey}, nil
}

func unixSeconds(t time.Time) uint64 {
	if u := t.Unix(); u > 0 {
		return uint64(u)
	}
	return 0
}

func appendMissing[T comparable](s []T, v T) []T {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// IsLastResort reports whether the KeyPackage carries the last_resort extension.
func (kp *KeyPackage) IsLastResort() bool {
	_, ok := kp.Extensions.Find(ExtensionLastResort)
	return ok
}

// ValidateKeyPackage checks a KeyPackage as a group member must before
// adding it (RFC 9420, Section 10.1): version and cipher suite match the
// group's, the signature verifies, the leaf node is valid with source
// key_package and a lifetime containing v.Now (unless v.IgnoreLifetime,
// for a received leaf whose lifetime the caller chose not to check), and init_key differs from the leaf's
// encryption_key. Checks against the tree (unique keys, mutual credential
// support) are done by RatchetTree.ValidateLeafNode when the leaf is added.
func ValidateKeyPackage(s *Suite, version ProtocolVersion, kp *KeyPackage, v *LeafValidation) error {
	return validateKeyPackage(s, version, kp, v, true)
}

// validateKeyPackage is ValidateKeyPackage; checkLeaf false skips the leaf
// node checks for a caller that runs RatchetTree.ValidateLeafNode, which
// repeats them (its signature verification is the expensive part).
func validateKeyPackage(s *Suite, version ProtocolVersion, kp *KeyPackage, v *LeafValidation, checkLeaf bool) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidKeyPackage, fmt.Sprintf(format, args...))
	}
	if kp.Version != version {
		return fail("version %d in a group of version %d", kp.Version, version)
	}
	if kp.CipherSuite != s.ID() {
		return fail("cipher suite %v in a %v group", kp.CipherSuite, s.ID())
	}
	if err := kp.VerifySignature(s); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	if err := s.ValidateHPKEPublicKey(kp.InitKey); err != nil {
		return fail("init key: %v", err)
	}
	if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
		return fail("init_key equals the leaf's encryption_key")
	}
	if kp.LeafNode.Source != LeafNodeSourceKeyPackage {
		return fail("leaf node source %v", kp.LeafNode.Source)
	}
	if !checkLeaf {
		return kp.Extensions.checkUnique()
	}
	if err := checkLeafContent(s, &kp.LeafNode, 0, v); err != nil {
		return fmt.Errorf("%w: leaf node: %w", ErrInvalidKeyPackage, err)
	}
	if err := kp.Extensions.checkUnique(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	return nil
}
