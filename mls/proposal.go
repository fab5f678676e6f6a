package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Proposal is RFC 9420, Section 12.1. Exactly the field named by Type is
// set. Proposal types outside RFC 9420 cannot be decoded: their bodies carry
// no length, so an unknown type makes the rest of the message unparseable.
//
// Validation of a proposal against the group (Section 12.2) belongs to the
// group layer; this type only encodes and decodes.
type Proposal struct {
	Type                   ProposalType
	Add                    *Add
	Update                 *Update
	Remove                 *Remove
	PreSharedKey           *PreSharedKey
	ReInit                 *ReInit
	ExternalInit           *ExternalInit
	GroupContextExtensions *GroupContextExtensions
}

// Add is RFC 9420, Section 12.1.1.
type Add struct {
	KeyPackage KeyPackage
}

// Update is RFC 9420, Section 12.1.2.
type Update struct {
	LeafNode LeafNode
}

// Remove is RFC 9420, Section 12.1.3.
type Remove struct {
	Removed LeafIndex
}

// PreSharedKey is RFC 9420, Section 12.1.4.
type PreSharedKey struct {
	PSK PreSharedKeyID
}

// ReInit is RFC 9420, Section 12.1.5.
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  Extensions
}

// ExternalInit is RFC 9420, Section 12.1.6.
type ExternalInit struct {
	KEMOutput []byte
}

// GroupContextExtensions is RFC 9420, Section 12.1.7.
type GroupContextExtensions struct {
	Extensions Extensions
}

func (a *Add) marshal(b *cryptobyte.Builder)       { a.KeyPackage.marshal(b) }
func (a *Add) unmarshal(s *cryptobyte.String) bool { return a.KeyPackage.unmarshal(s) }

func (u *Update) marshal(b *cryptobyte.Builder)       { u.LeafNode.marshal(b) }
func (u *Update) unmarshal(s *cryptobyte.String) bool { return u.LeafNode.unmarshal(s) }

func (r *Remove) marshal(b *cryptobyte.Builder) { b.AddUint32(uint32(r.Removed)) }
func (r *Remove) unmarshal(s *cryptobyte.String) bool {
	return s.ReadUint32((*uint32)(&r.Removed))
}

func (p *PreSharedKey) marshal(b *cryptobyte.Builder)       { p.PSK.marshal(b) }
func (p *PreSharedKey) unmarshal(s *cryptobyte.String) bool { return p.PSK.unmarshal(s) }

func (r *ReInit) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, r.GroupID)
	b.AddUint16(uint16(r.Version))
	b.AddUint16(uint16(r.CipherSuite))
	r.Extensions.marshal(b)
}

func (r *ReInit) unmarshal(s *cryptobyte.String) bool {
	*r = ReInit{}
	return readVarBytes(s, &r.GroupID) &&
		s.ReadUint16((*uint16)(&r.Version)) &&
		s.ReadUint16((*uint16)(&r.CipherSuite)) &&
		r.Extensions.unmarshal(s)
}

func (e *ExternalInit) marshal(b *cryptobyte.Builder) { addVarBytes(b, e.KEMOutput) }
func (e *ExternalInit) unmarshal(s *cryptobyte.String) bool {
	return readVarBytes(s, &e.KEMOutput)
}

func (g *GroupContextExtensions) marshal(b *cryptobyte.Builder) { g.Extensions.marshal(b) }
func (g *GroupContextExtensions) unmarshal(s *cryptobyte.String) bool {
	return g.Extensions.unmarshal(s)
}

// wireStruct is implemented by every encodable wire type of this package.
type wireStruct interface {
	marshal(b *cryptobyte.Builder)
	unmarshal(s *cryptobyte.String) bool
}

// body returns the proposal's value for its type, or nil.
func (p *Proposal) body() wireStruct {
	switch p.Type {
	case ProposalTypeAdd:
		if p.Add != nil {
			return p.Add
		}
	case ProposalTypeUpdate:
		if p.Update != nil {
			return p.Update
		}
	case ProposalTypeRemove:
		if p.Remove != nil {
			return p.Remove
		}
	case ProposalTypePSK:
		if p.PreSharedKey != nil {
			return p.PreSharedKey
		}
	case ProposalTypeReInit:
		if p.ReInit != nil {
			return p.ReInit
		}
	case ProposalTypeExternalInit:
		if p.ExternalInit != nil {
			return p.ExternalInit
		}
	case ProposalTypeGroupContextExtensions:
		if p.GroupContextExtensions != nil {
			return p.GroupContextExtensions
		}
	}
	return nil
}

func (p *Proposal) marshal(b *cryptobyte.Builder) {
	body := p.body()
	if body == nil {
		b.SetError(fmt.Errorf("mls: proposal of type %d without its body: %w", p.Type, ErrInvalidMessage))
		return
	}
	b.AddUint16(uint16(p.Type))
	body.marshal(b)
}

func (p *Proposal) unmarshal(s *cryptobyte.String) bool {
	*p = Proposal{}
	var t uint16
	if !s.ReadUint16(&t) {
		return false
	}
	p.Type = ProposalType(t)
	if !p.allocBody() {
		return false
	}
	return p.body().unmarshal(s)
}

// allocBody allocates the empty body for p.Type; false for an unknown type.
func (p *Proposal) allocBody() bool {
	switch p.Type {
	case ProposalTypeAdd:
		p.Add = new(Add)
	case ProposalTypeUpdate:
		p.Update = new(Update)
	case ProposalTypeRemove:
		p.Remove = new(Remove)
	case ProposalTypePSK:
		p.PreSharedKey = new(PreSharedKey)
	case ProposalTypeReInit:
		p.ReInit = new(ReInit)
	case ProposalTypeExternalInit:
		p.ExternalInit = new(ExternalInit)
	case ProposalTypeGroupContextExtensions:
		p.GroupContextExtensions = new(GroupContextExtensions)
	default:
		return false
	}
	return true
}

// MarshalBinary encodes the Proposal.
func (p *Proposal) MarshalBinary() ([]byte, error) { return marshal(p.marshal) }

// UnmarshalProposal decodes one Proposal, rejecting trailing bytes.
func UnmarshalProposal(data []byte) (*Proposal, error) {
	p := new(Proposal)
	if err := unmarshalAll("Proposal", data, p.unmarshal); err != nil {
		return nil, err
	}
	return p, nil
}

// ProposalOrRefType is RFC 9420, Section 12.4.
type ProposalOrRefType uint8

// ProposalOrRef types (RFC 9420, Section 12.4).
const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// ProposalOrRef is RFC 9420, Section 12.4: a proposal inline in a Commit or
// a reference to one sent earlier. Exactly one of Proposal and Reference is
// set, as Type says.
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal
	Reference []byte // ProposalRef, a HashReference (Section 5.2)
}

func (p *ProposalOrRef) marshal(b *cryptobyte.Builder) {
	switch {
	case p.Type == ProposalOrRefProposal && p.Proposal != nil:
		b.AddUint8(uint8(p.Type))
		p.Proposal.marshal(b)
	case p.Type == ProposalOrRefReference:
		b.AddUint8(uint8(p.Type))
		addVarBytes(b, p.Reference)
	default:
		b.SetError(fmt.Errorf("mls: ProposalOrRef of type %d: %w", p.Type, ErrInvalidMessage))
	}
}

func (p *ProposalOrRef) unmarshal(s *cryptobyte.String) bool {
	*p = ProposalOrRef{}
	var t uint8
	if !s.ReadUint8(&t) {
		return false
	}
	p.Type = ProposalOrRefType(t)
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		return p.Proposal.unmarshal(s)
	case ProposalOrRefReference:
		return readVarBytes(s, &p.Reference)
	}
	return false
}

// ProposalRef computes the reference to a proposal from the
// AuthenticatedContent that carried it (RFC 9420, Section 5.2):
// RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent).
func (s *Suite) ProposalRef(ac *AuthenticatedContent) ([]byte, error) {
	enc, err := ac.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return s.RefHash("MLS 1.0 Proposal Reference", enc), nil
}
