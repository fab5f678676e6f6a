package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// CredentialType identifies the kind of credential (RFC 9420, Section 5.3).
type CredentialType uint16

// Credential types defined by RFC 9420, Section 17.5.
const (
	CredentialTypeBasic CredentialType = 0x0001
	CredentialTypeX509  CredentialType = 0x0002
)

// Certificate is one DER-encoded X.509 certificate: struct { opaque
// cert_data<V>; } (RFC 9420, Section 5.3).
type Certificate struct {
	Data []byte
}

// Credential binds an identity to a signature key (RFC 9420, Section 5.3).
// Exactly one of Identity (basic) and Certificates (x509) is meaningful,
// selected by Type.
type Credential struct {
	Type         CredentialType
	Identity     []byte        // basic: opaque identity<V>
	Certificates []Certificate // x509: Certificate certificates<V>, end-entity first
}

// NewBasicCredential returns a basic credential for identity.
func NewBasicCredential(identity []byte) Credential {
	return Credential{Type: CredentialTypeBasic, Identity: identity}
}

func (c *Credential) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(c.Type))
	switch c.Type {
	case CredentialTypeBasic:
		addVarBytes(b, c.Identity)
	case CredentialTypeX509:
		addVarVector(b, func(b *cryptobyte.Builder) {
			for i := range c.Certificates {
				addVarBytes(b, c.Certificates[i].Data)
			}
		})
	default:
		// An unknown type has no defined body, so it cannot be encoded.
		b.SetError(fmt.Errorf("mls: credential type %d: %w", c.Type, ErrDecode))
	}
}

// unmarshal rejects credential types other than basic and x509: the body of
// an unknown type has no length prefix, so it cannot even be skipped.
func (c *Credential) unmarshal(s *cryptobyte.String) bool {
	*c = Credential{}
	var t uint16
	if !s.ReadUint16(&t) {
		return false
	}
	c.Type = CredentialType(t)
	switch c.Type {
	case CredentialTypeBasic:
		return readVarBytes(s, &c.Identity)
	case CredentialTypeX509:
		return readVectorElems(s, func(s *cryptobyte.String) bool {
			var cert Certificate
			if !readVarBytes(s, &cert.Data) {
				return false
			}
			c.Certificates = append(c.Certificates, cert)
			return true
		})
	default:
		return false
	}
}

// Equal reports whether two credentials encode identically.
func (c *Credential) Equal(o *Credential) bool {
	if c.Type != o.Type || string(c.Identity) != string(o.Identity) || len(c.Certificates) != len(o.Certificates) {
		return false
	}
	for i := range c.Certificates {
		if string(c.Certificates[i].Data) != string(o.Certificates[i].Data) {
			return false
		}
	}
	return true
}

// ProposalType identifies a proposal (RFC 9420, Section 12.1).
type ProposalType uint16

// Proposal types defined by RFC 9420, Section 17.4.
const (
	ProposalTypeAdd                    ProposalType = 0x0001
	ProposalTypeUpdate                 ProposalType = 0x0002
	ProposalTypeRemove                 ProposalType = 0x0003
	ProposalTypePSK                    ProposalType = 0x0004
	ProposalTypeReInit                 ProposalType = 0x0005
	ProposalTypeExternalInit           ProposalType = 0x0006
	ProposalTypeGroupContextExtensions ProposalType = 0x0007
)

// IsDefault reports whether t is one of the RFC's default proposal types,
// which every member supports without listing them in capabilities
// (RFC 9420, Section 7.2).
func (t ProposalType) IsDefault() bool {
	return t >= ProposalTypeAdd && t <= ProposalTypeGroupContextExtensions
}

// Capabilities lists what a client supports (RFC 9420, Section 7.2).
// Unknown values, GREASE included, are kept as received and ignored.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func addUint16s[T ~uint16](b *cryptobyte.Builder, vs []T) {
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, v := range vs {
			b.AddUint16(uint16(v))
		}
	})
}

func readUint16s[T ~uint16](s *cryptobyte.String, out *[]T) bool {
	*out = nil
	return readVectorElems(s, func(s *cryptobyte.String) bool {
		var v uint16
		if !s.ReadUint16(&v) {
			return false
		}
		*out = append(*out, T(v))
		return true
	})
}

func (c *Capabilities) marshal(b *cryptobyte.Builder) {
	addUint16s(b, c.Versions)
	addUint16s(b, c.CipherSuites)
	addUint16s(b, c.Extensions)
	addUint16s(b, c.Proposals)
	addUint16s(b, c.Credentials)
}

func (c *Capabilities) unmarshal(s *cryptobyte.String) bool {
	*c = Capabilities{}
	return readUint16s(s, &c.Versions) &&
		readUint16s(s, &c.CipherSuites) &&
		readUint16s(s, &c.Extensions) &&
		readUint16s(s, &c.Proposals) &&
		readUint16s(s, &c.Credentials)
}

// SupportsVersion, SupportsCipherSuite, SupportsCredential report whether a
// value is listed.
func (c *Capabilities) SupportsVersion(v ProtocolVersion) bool { return slices.Contains(c.Versions, v) }

func (c *Capabilities) SupportsCipherSuite(cs CipherSuite) bool {
	return slices.Contains(c.CipherSuites, cs)
}

func (c *Capabilities) SupportsCredential(t CredentialType) bool {
	return slices.Contains(c.Credentials, t)
}

// SupportsExtension reports whether t is a default extension type or listed.
func (c *Capabilities) SupportsExtension(t ExtensionType) bool {
	return t.IsDefault() || slices.Contains(c.Extensions, t)
}

// SupportsProposal reports whether t is a default proposal type or listed.
func (c *Capabilities) SupportsProposal(t ProposalType) bool {
	return t.IsDefault() || slices.Contains(c.Proposals, t)
}

// Lifetime bounds the validity of a KeyPackage's leaf node, in seconds since
// the Unix epoch, inclusive (RFC 9420, Section 7.2).
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

func (l *Lifetime) marshal(b *cryptobyte.Builder) {
	b.AddUint64(l.NotBefore)
	b.AddUint64(l.NotAfter)
}

func (l *Lifetime) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint64(&l.NotBefore) && s.ReadUint64(&l.NotAfter)
}

// Contains reports whether the instant now (Unix seconds) lies in the lifetime.
func (l *Lifetime) Contains(now uint64) bool { return l.NotBefore <= now && now <= l.NotAfter }

// RequiredCapabilities is the required_capabilities GroupContext extension
// (RFC 9420, Section 11.1): what every member's capabilities must list.
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

func (r *RequiredCapabilities) marshal(b *cryptobyte.Builder) {
	addUint16s(b, r.ExtensionTypes)
	addUint16s(b, r.ProposalTypes)
	addUint16s(b, r.CredentialTypes)
}

func (r *RequiredCapabilities) unmarshal(s *cryptobyte.String) bool {
	*r = RequiredCapabilities{}
	return readUint16s(s, &r.ExtensionTypes) &&
		readUint16s(s, &r.ProposalTypes) &&
		readUint16s(s, &r.CredentialTypes)
}

// MarshalBinary encodes the extension body.
func (r *RequiredCapabilities) MarshalBinary() ([]byte, error) { return marshal(r.marshal) }

// UnmarshalRequiredCapabilities decodes a required_capabilities extension body.
func UnmarshalRequiredCapabilities(data []byte) (*RequiredCapabilities, error) {
	r := new(RequiredCapabilities)
	if err := unmarshalAll("RequiredCapabilities", data, r.unmarshal); err != nil {
		return nil, err
	}
	return r, nil
}

// checkRequired reports the first requirement of r that c does not list
// (RFC 9420, Section 11.1).
func (c *Capabilities) checkRequired(r *RequiredCapabilities) error {
	for _, t := range r.ExtensionTypes {
		if !c.SupportsExtension(t) {
			return fmt.Errorf("required extension 0x%04x not supported", uint16(t))
		}
	}
	for _, t := range r.ProposalTypes {
		if !c.SupportsProposal(t) {
			return fmt.Errorf("required proposal type 0x%04x not supported", uint16(t))
		}
	}
	for _, t := range r.CredentialTypes {
		if !c.SupportsCredential(t) {
			return fmt.Errorf("required credential type 0x%04x not supported", uint16(t))
		}
	}
	return nil
}

// ErrCredentialChanged reports a leaf replaced by one whose credential the
// group's CredentialPolicy refuses; with the default policy, a credential
// of another identity.
var ErrCredentialChanged = errors.New("mls: credential identity changed")

// CredentialPolicy decides whether a member's leaf whose credential is old
// may be replaced by a leaf with credential next: the leaf of an Update
// proposal, the leaf of a Commit's UpdatePath, or the new leaf of an
// external Commit that removes the joiner's old leaf (a resync). RFC 9420,
// Sections 5.3.1, 7.9 and 12.4.3.2 leave that rule to the application. It
// returns nil to accept; a refusal makes the proposal or commit invalid
// with an error matching ErrCredentialChanged.
type CredentialPolicy func(old, next *Credential) error

// SameIdentity is the default CredentialPolicy: the credential keeps its
// type and its identity, the identity bytes of a basic credential or the
// end-entity certificate of an x509 one. Signature and encryption keys
// may change.
func SameIdentity(old, next *Credential) error {
	if old.Type != next.Type {
		return fmt.Errorf("%w: credential type %d replaced by %d", ErrCredentialChanged, old.Type, next.Type)
	}
	switch old.Type {
	case CredentialTypeBasic:
		if !bytes.Equal(old.Identity, next.Identity) {
			return fmt.Errorf("%w: identity %q replaced by %q", ErrCredentialChanged, old.Identity, next.Identity)
		}
	case CredentialTypeX509:
		if len(old.Certificates) == 0 || len(next.Certificates) == 0 ||
			!bytes.Equal(old.Certificates[0].Data, next.Certificates[0].Data) {
			return fmt.Errorf("%w: end-entity certificate replaced", ErrCredentialChanged)
		}
	}
	return nil
}

// checkCredentialChange applies the group's CredentialPolicy to leaf l,
// whose credential is old, being replaced by a leaf with credential next.
func (c *Config) checkCredentialChange(l LeafIndex, old, next *Credential) error {
	policy := c.CredentialPolicy
	if policy == nil {
		policy = SameIdentity
	}
	err := policy(old, next)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrCredentialChanged) {
		err = fmt.Errorf("%w: %w", ErrCredentialChanged, err)
	}
	return fmt.Errorf("leaf %d: %w", l, err)
}
