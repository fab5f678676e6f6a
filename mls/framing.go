package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// WireFormat is RFC 9420, Section 6 (IANA "MLS Wire Formats").
type WireFormat uint16

// Wire formats of RFC 9420, Section 17.2.
const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// ContentType is RFC 9420, Section 6.
type ContentType uint8

// Content types of RFC 9420, Section 6.
const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

func (c ContentType) valid() bool { return c >= ContentTypeApplication && c <= ContentTypeCommit }

func (c ContentType) String() string {
	switch c {
	case ContentTypeApplication:
		return "application"
	case ContentTypeProposal:
		return "proposal"
	case ContentTypeCommit:
		return "commit"
	}
	return fmt.Sprintf("ContentType(%d)", uint8(c))
}

// SenderType is RFC 9420, Section 6.
type SenderType uint8

// Sender types of RFC 9420, Section 6.
const (
	SenderTypeMember            SenderType = 1
	SenderTypeExternal          SenderType = 2
	SenderTypeNewMemberProposal SenderType = 3
	SenderTypeNewMemberCommit   SenderType = 4
)

// Sender is RFC 9420, Section 6. LeafIndex is meaningful for member senders,
// SenderIndex (an index into the external_senders extension) for external
// senders; new members carry neither.
type Sender struct {
	Type        SenderType
	LeafIndex   LeafIndex
	SenderIndex uint32
}

// MemberSender returns the Sender of the member at leaf.
func MemberSender(leaf LeafIndex) Sender { return Sender{Type: SenderTypeMember, LeafIndex: leaf} }

func (s *Sender) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(s.Type))
	switch s.Type {
	case SenderTypeMember:
		b.AddUint32(uint32(s.LeafIndex))
	case SenderTypeExternal:
		b.AddUint32(s.SenderIndex)
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		b.SetError(fmt.Errorf("mls: sender type %d: %w", s.Type, ErrInvalidMessage))
	}
}

func (s *Sender) unmarshal(str *cryptobyte.String) bool {
	*s = Sender{}
	if !str.ReadUint8((*uint8)(&s.Type)) {
		return false
	}
	switch s.Type {
	case SenderTypeMember:
		return str.ReadUint32((*uint32)(&s.LeafIndex))
	case SenderTypeExternal:
		return str.ReadUint32(&s.SenderIndex)
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
		return true
	}
	return false
}

// FramedContent is RFC 9420, Section 6: the content of a handshake or
// application message with its group, epoch and sender. Exactly one of
// ApplicationData, Proposal and Commit is meaningful, as ContentType says.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

// marshalBody writes the select on content_type, shared by FramedContent
// and PrivateMessageContent.
func (fc *FramedContent) marshalBody(b *cryptobyte.Builder) {
	switch fc.ContentType {
	case ContentTypeApplication:
		addVarBytes(b, fc.ApplicationData)
	case ContentTypeProposal:
		if fc.Proposal == nil {
			b.SetError(fmt.Errorf("mls: proposal content without a proposal: %w", ErrInvalidMessage))
			return
		}
		fc.Proposal.marshal(b)
	case ContentTypeCommit:
		if fc.Commit == nil {
			b.SetError(fmt.Errorf("mls: commit content without a commit: %w", ErrInvalidMessage))
			return
		}
		fc.Commit.marshal(b)
	default:
		b.SetError(fmt.Errorf("mls: content type %d: %w", fc.ContentType, ErrInvalidMessage))
	}
}

func (fc *FramedContent) unmarshalBody(s *cryptobyte.String) bool {
	fc.ApplicationData, fc.Proposal, fc.Commit = nil, nil, nil
	switch fc.ContentType {
	case ContentTypeApplication:
		return readVarBytes(s, &fc.ApplicationData)
	case ContentTypeProposal:
		fc.Proposal = new(Proposal)
		return fc.Proposal.unmarshal(s)
	case ContentTypeCommit:
		fc.Commit = new(Commit)
		return fc.Commit.unmarshal(s)
	}
	return false
}

func (fc *FramedContent) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, fc.GroupID)
	b.AddUint64(fc.Epoch)
	fc.Sender.marshal(b)
	addVarBytes(b, fc.AuthenticatedData)
	b.AddUint8(uint8(fc.ContentType))
	fc.marshalBody(b)
}

func (fc *FramedContent) unmarshal(s *cryptobyte.String) bool {
	*fc = FramedContent{}
	if !readVarBytes(s, &fc.GroupID) || !s.ReadUint64(&fc.Epoch) ||
		!fc.Sender.unmarshal(s) || !readVarBytes(s, &fc.AuthenticatedData) ||
		!s.ReadUint8((*uint8)(&fc.ContentType)) || !fc.ContentType.valid() {
		return false
	}
	return fc.unmarshalBody(s)
}

// FramedContentAuthData is RFC 9420, Section 6.1: the signature, and for
// commits the confirmation tag.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte // commit only
}

func (a *FramedContentAuthData) marshal(b *cryptobyte.Builder, ct ContentType) {
	addVarBytes(b, a.Signature)
	if ct == ContentTypeCommit {
		addVarBytes(b, a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) unmarshal(s *cryptobyte.String, ct ContentType) bool {
	*a = FramedContentAuthData{}
	if !readVarBytes(s, &a.Signature) {
		return false
	}
	if ct == ContentTypeCommit {
		return readVarBytes(s, &a.ConfirmationTag)
	}
	return true
}

// AuthenticatedContent is RFC 9420, Section 6.1: a FramedContent with its
// authentication, independent of how it travelled. Handshake processing in
// the group layer works on this type.
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

func (ac *AuthenticatedContent) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(ac.WireFormat))
	ac.Content.marshal(b)
	ac.Auth.marshal(b, ac.Content.ContentType)
}

func (ac *AuthenticatedContent) unmarshal(s *cryptobyte.String) bool {
	*ac = AuthenticatedContent{}
	return s.ReadUint16((*uint16)(&ac.WireFormat)) &&
		(ac.WireFormat == WireFormatPublicMessage || ac.WireFormat == WireFormatPrivateMessage) &&
		ac.Content.unmarshal(s) &&
		ac.Auth.unmarshal(s, ac.Content.ContentType)
}

// MarshalBinary encodes the AuthenticatedContent.
func (ac *AuthenticatedContent) MarshalBinary() ([]byte, error) { return marshal(ac.marshal) }

// UnmarshalAuthenticatedContent decodes one AuthenticatedContent, rejecting
// trailing bytes.
func UnmarshalAuthenticatedContent(data []byte) (*AuthenticatedContent, error) {
	ac := new(AuthenticatedContent)
	if err := unmarshalAll("AuthenticatedContent", data, ac.unmarshal); err != nil {
		return nil, err
	}
	return ac, nil
}

// marshalTBS writes FramedContentTBS (RFC 9420, Section 6.1). The encoded
// group context is included for member and new_member_commit senders; it may
// be nil for the others.
func (ac *AuthenticatedContent) marshalTBS(b *cryptobyte.Builder, groupContext []byte) {
	b.AddUint16(uint16(ProtocolVersionMLS10))
	b.AddUint16(uint16(ac.WireFormat))
	ac.Content.marshal(b)
	switch ac.Content.Sender.Type {
	case SenderTypeMember, SenderTypeNewMemberCommit:
		if groupContext == nil {
			b.SetError(fmt.Errorf("mls: FramedContentTBS of a %d sender needs the group context: %w", ac.Content.Sender.Type, ErrInvalidMessage))
			return
		}
		b.AddBytes(groupContext)
	}
}

const framedContentTBSLabel = "FramedContentTBS"

// encodeGroupContext encodes gc, or returns nil for a nil gc.
func encodeGroupContext(gc *GroupContext) ([]byte, error) {
	if gc == nil {
		return nil, nil
	}
	return gc.MarshalBinary()
}

// Sign sets Auth.Signature: SignWithLabel(., "FramedContentTBS",
// FramedContentTBS) (RFC 9420, Section 6.1). gc is the current epoch's
// GroupContext (required for member and new_member_commit senders).
func (ac *AuthenticatedContent) Sign(key *SigningKey, gc *GroupContext) error {
	gcBytes, err := encodeGroupContext(gc)
	if err != nil {
		return fmt.Errorf("mls: signing framed content: %w", err)
	}
	return ac.sign(key, gcBytes)
}

func (ac *AuthenticatedContent) sign(key *SigningKey, groupContext []byte) error {
	tbs, err := marshal(func(b *cryptobyte.Builder) { ac.marshalTBS(b, groupContext) })
	if err != nil {
		return fmt.Errorf("mls: signing framed content: %w", err)
	}
	sig, err := key.SignWithLabel(framedContentTBSLabel, tbs)
	if err != nil {
		return fmt.Errorf("mls: signing framed content: %w", err)
	}
	ac.Auth.Signature = sig
	return nil
}

// VerifySignature checks Auth.Signature with the sender's key (RFC 9420,
// Section 6.1); the caller selects the key by sender type.
func (ac *AuthenticatedContent) VerifySignature(key *VerifyingKey, gc *GroupContext) error {
	gcBytes, err := encodeGroupContext(gc)
	if err != nil {
		return fmt.Errorf("mls: verifying framed content: %w", err)
	}
	return ac.verifySignature(key, gcBytes)
}

func (ac *AuthenticatedContent) verifySignature(key *VerifyingKey, groupContext []byte) error {
	tbs, err := marshal(func(b *cryptobyte.Builder) { ac.marshalTBS(b, groupContext) })
	if err != nil {
		return fmt.Errorf("mls: verifying framed content: %w", err)
	}
	return key.VerifyWithLabel(framedContentTBSLabel, tbs, ac.Auth.Signature)
}

// membershipTag is MAC(membership_key, AuthenticatedContentTBM)
// (RFC 9420, Section 6.2).
func (ac *AuthenticatedContent) membershipTag(s *Suite, membershipKey, groupContext []byte) ([]byte, error) {
	tbm, err := marshal(func(b *cryptobyte.Builder) {
		ac.marshalTBS(b, groupContext)
		ac.Auth.marshal(b, ac.Content.ContentType)
	})
	if err != nil {
		return nil, fmt.Errorf("mls: membership tag: %w", err)
	}
	return s.MAC(membershipKey, tbm), nil
}

// PublicMessage is RFC 9420, Section 6.2: a signed, unencrypted handshake
// message. MembershipTag is present exactly for member senders.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte
}

func (pm *PublicMessage) marshal(b *cryptobyte.Builder) {
	pm.Content.marshal(b)
	pm.Auth.marshal(b, pm.Content.ContentType)
	if pm.Content.Sender.Type == SenderTypeMember {
		addVarBytes(b, pm.MembershipTag)
	}
}

func (pm *PublicMessage) unmarshal(s *cryptobyte.String) bool {
	*pm = PublicMessage{}
	if !pm.Content.unmarshal(s) || !pm.Auth.unmarshal(s, pm.Content.ContentType) {
		return false
	}
	if pm.Content.Sender.Type == SenderTypeMember {
		return readVarBytes(s, &pm.MembershipTag)
	}
	return true
}

// AuthenticatedContent returns the message's content as an
// AuthenticatedContent of wire format mls_public_message (sharing memory).
func (pm *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: pm.Content, Auth: pm.Auth}
}

// PrivateMessage is RFC 9420, Section 6.3: an encrypted message whose sender
// is hidden in EncryptedSenderData.
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (pm *PrivateMessage) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, pm.GroupID)
	b.AddUint64(pm.Epoch)
	b.AddUint8(uint8(pm.ContentType))
	addVarBytes(b, pm.AuthenticatedData)
	addVarBytes(b, pm.EncryptedSenderData)
	addVarBytes(b, pm.Ciphertext)
}

func (pm *PrivateMessage) unmarshal(s *cryptobyte.String) bool {
	*pm = PrivateMessage{}
	return readVarBytes(s, &pm.GroupID) && s.ReadUint64(&pm.Epoch) &&
		s.ReadUint8((*uint8)(&pm.ContentType)) && pm.ContentType.valid() &&
		readVarBytes(s, &pm.AuthenticatedData) &&
		readVarBytes(s, &pm.EncryptedSenderData) &&
		readVarBytes(s, &pm.Ciphertext)
}

// SenderData is RFC 9420, Section 6.3.2.
type SenderData struct {
	LeafIndex  LeafIndex
	Generation uint32
	ReuseGuard [4]byte
}

func (sd *SenderData) marshal(b *cryptobyte.Builder) {
	b.AddUint32(uint32(sd.LeafIndex))
	b.AddUint32(sd.Generation)
	b.AddBytes(sd.ReuseGuard[:])
}

func (sd *SenderData) unmarshal(s *cryptobyte.String) bool {
	*sd = SenderData{}
	return s.ReadUint32((*uint32)(&sd.LeafIndex)) && s.ReadUint32(&sd.Generation) &&
		s.CopyBytes(sd.ReuseGuard[:])
}

// MLSMessage is RFC 9420, Section 6: the envelope of everything MLS sends.
// Exactly the field named by WireFormat is set.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

func (m *MLSMessage) body() wireStruct {
	switch m.WireFormat {
	case WireFormatPublicMessage:
		if m.PublicMessage != nil {
			return m.PublicMessage
		}
	case WireFormatPrivateMessage:
		if m.PrivateMessage != nil {
			return m.PrivateMessage
		}
	case WireFormatWelcome:
		if m.Welcome != nil {
			return m.Welcome
		}
	case WireFormatGroupInfo:
		if m.GroupInfo != nil {
			return m.GroupInfo
		}
	case WireFormatKeyPackage:
		if m.KeyPackage != nil {
			return m.KeyPackage
		}
	}
	return nil
}

func (m *MLSMessage) marshal(b *cryptobyte.Builder) {
	body := m.body()
	if body == nil {
		b.SetError(fmt.Errorf("mls: MLSMessage of wire format %d without its body: %w", m.WireFormat, ErrInvalidMessage))
		return
	}
	b.AddUint16(uint16(m.Version))
	b.AddUint16(uint16(m.WireFormat))
	body.marshal(b)
}

func (m *MLSMessage) unmarshal(s *cryptobyte.String) bool {
	*m = MLSMessage{}
	if !s.ReadUint16((*uint16)(&m.Version)) || m.Version != ProtocolVersionMLS10 ||
		!s.ReadUint16((*uint16)(&m.WireFormat)) {
		return false
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
	default:
		return false
	}
	return m.body().unmarshal(s)
}

// MarshalBinary encodes the MLSMessage.
func (m *MLSMessage) MarshalBinary() ([]byte, error) { return marshal(m.marshal) }

// UnmarshalMLSMessage decodes one MLSMessage, rejecting trailing bytes,
// unknown versions and unknown wire formats.
func UnmarshalMLSMessage(data []byte) (*MLSMessage, error) {
	m := new(MLSMessage)
	if err := unmarshalAll("MLSMessage", data, m.unmarshal); err != nil {
		return nil, err
	}
	return m, nil
}

// NewMLSMessage wraps body (a *PublicMessage, *PrivateMessage, *Welcome,
// *GroupInfo or *KeyPackage) in an MLSMessage of version mls10.
func NewMLSMessage(body any) (*MLSMessage, error) {
	m := &MLSMessage{Version: ProtocolVersionMLS10}
	switch v := body.(type) {
	case *PublicMessage:
		m.WireFormat, m.PublicMessage = WireFormatPublicMessage, v
	case *PrivateMessage:
		m.WireFormat, m.PrivateMessage = WireFormatPrivateMessage, v
	case *Welcome:
		m.WireFormat, m.Welcome = WireFormatWelcome, v
	case *GroupInfo:
		m.WireFormat, m.GroupInfo = WireFormatGroupInfo, v
	case *KeyPackage:
		m.WireFormat, m.KeyPackage = WireFormatKeyPackage, v
	default:
		return nil, fmt.Errorf("mls: %T is not an MLSMessage body: %w", body, ErrInvalidMessage)
	}
	return m, nil
}
