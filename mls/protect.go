package mls

import (
	"bytes"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
)

// SenderKeyFunc returns the signature key that must have signed ac, chosen
// by the sender type (RFC 9420, Section 6.1): the member's leaf, the
// external sender, or the new member's key in the content itself. It
// returns an error wrapping ErrUnknownSender when there is no such sender.
type SenderKeyFunc func(ac *AuthenticatedContent) (*VerifyingKey, error)

// MessageProtector turns AuthenticatedContent into PublicMessage and
// PrivateMessage and back for one epoch (RFC 9420, Sections 6.2 and 6.3).
//
// It retains the epoch's GroupContext (and its encoding), its own copies of
// sender_data_secret and membership_key, and the epoch's SecretTree, which
// it uses and advances but does not own: Erase zeroes the two secrets, and
// the caller erases the tree when the epoch ends. Not safe for concurrent use.
type MessageProtector struct {
	suite            *Suite
	groupContext     *GroupContext
	groupContextEnc  []byte
	tree             *SecretTree
	senderDataSecret []byte
	membershipKey    []byte
}

// NewMessageProtector prepares message protection for the epoch described
// by gc. senderDataSecret and membershipKey are copied.
func (s *Suite) NewMessageProtector(gc *GroupContext, tree *SecretTree, senderDataSecret, membershipKey []byte) (*MessageProtector, error) {
	if gc.CipherSuite != s.id {
		return nil, fmt.Errorf("mls: group context of %v for a %v protector: %w", gc.CipherSuite, s.id, ErrUnsupportedCipherSuite)
	}
	if tree == nil || tree.suite != s {
		return nil, fmt.Errorf("mls: message protector needs a secret tree of the same suite: %w", ErrInvalidKey)
	}
	enc, err := gc.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &MessageProtector{
		suite:            s,
		groupContext:     gc.Clone(),
		groupContextEnc:  enc,
		tree:             tree,
		senderDataSecret: bytes.Clone(senderDataSecret),
		membershipKey:    bytes.Clone(membershipKey),
	}, nil
}

// Erase zeroes the secrets the protector copied.
func (p *MessageProtector) Erase() {
	clear(p.senderDataSecret)
	clear(p.membershipKey)
	p.senderDataSecret, p.membershipKey = nil, nil
}

// GroupContext returns the protector's group context; callers must not modify it.
func (p *MessageProtector) GroupContext() *GroupContext { return p.groupContext }

// NewAuthenticatedContent frames and signs content for sending as
// wireFormat in the current epoch: it fills in group_id and epoch and signs
// FramedContentTBS. Commits still need their confirmation tag set by the
// caller (it depends on the signature through the transcript hash).
func (p *MessageProtector) NewAuthenticatedContent(wireFormat WireFormat, content FramedContent, key *SigningKey) (*AuthenticatedContent, error) {
	content.GroupID = p.groupContext.GroupID
	content.Epoch = p.groupContext.Epoch
	ac := &AuthenticatedContent{WireFormat: wireFormat, Content: content}
	if err := ac.sign(key, p.groupContextEnc); err != nil {
		return nil, err
	}
	return ac, nil
}

// checkEpoch rejects content of another group or epoch.
func (p *MessageProtector) checkEpoch(groupID []byte, epoch uint64) error {
	if !bytes.Equal(groupID, p.groupContext.GroupID) {
		return fmt.Errorf("mls: message for group %x: %w", groupID, ErrWrongGroup)
	}
	if epoch != p.groupContext.Epoch {
		return fmt.Errorf("mls: message for epoch %d in epoch %d: %w", epoch, p.groupContext.Epoch, ErrWrongEpoch)
	}
	return nil
}

// ProtectPublic wraps signed content in a PublicMessage, adding the
// membership tag for member senders (RFC 9420, Section 6.2). Application
// data cannot be sent in a PublicMessage (Section 6.2).
func (p *MessageProtector) ProtectPublic(ac *AuthenticatedContent) (*PublicMessage, error) {
	if ac.WireFormat != WireFormatPublicMessage {
		return nil, fmt.Errorf("mls: PublicMessage with wire format %d: %w", ac.WireFormat, ErrInvalidMessage)
	}
	if ac.Content.ContentType == ContentTypeApplication {
		return nil, fmt.Errorf("mls: application data in a PublicMessage: %w", ErrInvalidMessage)
	}
	if err := p.checkEpoch(ac.Content.GroupID, ac.Content.Epoch); err != nil {
		return nil, err
	}
	if err := checkSenderContent(&ac.Content); err != nil {
		return nil, err
	}
	pm := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type == SenderTypeMember {
		tag, err := ac.membershipTag(p.suite, p.membershipKey, p.groupContextEnc)
		if err != nil {
			return nil, err
		}
		pm.MembershipTag = tag
	}
	return pm, nil
}

// UnprotectPublic checks a PublicMessage of the current epoch: group and
// epoch, membership tag for member senders, then the signature with the key
// keyFor returns (RFC 9420, Section 6.2). The confirmation tag of a commit
// is checked by the group layer, which knows the new epoch's key.
func (p *MessageProtector) UnprotectPublic(pm *PublicMessage, keyFor SenderKeyFunc) (*AuthenticatedContent, error) {
	if err := p.checkEpoch(pm.Content.GroupID, pm.Content.Epoch); err != nil {
		return nil, err
	}
	if pm.Content.ContentType == ContentTypeApplication {
		return nil, fmt.Errorf("mls: application data in a PublicMessage: %w", ErrInvalidMessage)
	}
	if err := checkSenderContent(&pm.Content); err != nil {
		return nil, err
	}
	ac := pm.AuthenticatedContent()
	if pm.Content.Sender.Type == SenderTypeMember {
		if err := p.checkMemberLeaf(pm.Content.Sender.LeafIndex); err != nil {
			return nil, err
		}
		want, err := ac.membershipTag(p.suite, p.membershipKey, p.groupContextEnc)
		if err != nil {
			return nil, err
		}
		if !equalConstantTime(want, pm.MembershipTag) {
			return nil, ErrInvalidMembershipTag
		}
	}
	key, err := keyFor(ac)
	if err != nil {
		return nil, fmt.Errorf("mls: PublicMessage sender: %w", err)
	}
	if err := ac.verifySignature(key, p.groupContextEnc); err != nil {
		return nil, err
	}
	return ac, nil
}

// checkSenderContent enforces which content each non-member sender may
// send (RFC 9420, Section 6.1): external senders and new members joining by
// proposal send proposals (new members only Add), new members joining by
// external commit send commits. Which proposal types an external sender may
// use is group policy, checked by the group layer.
func checkSenderContent(c *FramedContent) error {
	ok := true
	switch c.Sender.Type {
	case SenderTypeMember:
	case SenderTypeExternal:
		ok = c.ContentType == ContentTypeProposal
	case SenderTypeNewMemberProposal:
		ok = c.ContentType == ContentTypeProposal && c.Proposal != nil && c.Proposal.Type == ProposalTypeAdd
	case SenderTypeNewMemberCommit:
		ok = c.ContentType == ContentTypeCommit
	default:
		ok = false
	}
	if !ok {
		return fmt.Errorf("mls: %v content from a sender of type %d: %w", c.ContentType, c.Sender.Type, ErrInvalidMessage)
	}
	return nil
}

func (p *MessageProtector) checkMemberLeaf(leaf LeafIndex) error {
	if uint32(leaf) >= p.tree.nLeaves {
		return fmt.Errorf("mls: sender leaf %d of %d: %w", leaf, p.tree.nLeaves, ErrUnknownSender)
	}
	return nil
}

func ratchetFor(ct ContentType) RatchetType {
	if ct == ContentTypeApplication {
		return ApplicationRatchet
	}
	return HandshakeRatchet
}

// privateContentAAD encodes PrivateContentAAD (RFC 9420, Section 6.3.1).
func privateContentAAD(groupID []byte, epoch uint64, ct ContentType, authenticatedData []byte) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		addVarBytes(b, groupID)
		b.AddUint64(epoch)
		b.AddUint8(uint8(ct))
		addVarBytes(b, authenticatedData)
	})
}

// senderDataAAD encodes SenderDataAAD (RFC 9420, Section 6.3.2).
func senderDataAAD(groupID []byte, epoch uint64, ct ContentType) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		addVarBytes(b, groupID)
		b.AddUint64(epoch)
		b.AddUint8(uint8(ct))
	})
}

// applyReuseGuard XORs the guard into the first four nonce bytes
// (RFC 9420, Section 6.3.1), writing to a fresh slice.
func applyReuseGuard(nonce []byte, guard [4]byte) []byte {
	out := bytes.Clone(nonce)
	for i := range guard {
		out[i] ^= guard[i]
	}
	return out
}

// ProtectPrivate encrypts signed content from a member into a
// PrivateMessage (RFC 9420, Section 6.3): the content key comes from the
// sender's ratchet (consumed even if a later step fails, so it can never be
// used twice), the nonce is masked with a fresh reuse guard from rand, and
// the sender data is encrypted under a key derived from a sample of the
// ciphertext. padding zero bytes are appended to the plaintext.
func (p *MessageProtector) ProtectPrivate(ac *AuthenticatedContent, padding int, rand io.Reader) (*PrivateMessage, error) {
	c := &ac.Content
	switch {
	case ac.WireFormat != WireFormatPrivateMessage:
		return nil, fmt.Errorf("mls: PrivateMessage with wire format %d: %w", ac.WireFormat, ErrInvalidMessage)
	case c.Sender.Type != SenderTypeMember:
		return nil, fmt.Errorf("mls: PrivateMessage from a sender of type %d: %w", c.Sender.Type, ErrInvalidMessage)
	case padding < 0:
		return nil, fmt.Errorf("mls: negative padding: %w", ErrInvalidMessage)
	}
	if err := p.checkEpoch(c.GroupID, c.Epoch); err != nil {
		return nil, err
	}
	s := p.suite
	sd := SenderData{LeafIndex: c.Sender.LeafIndex}
	if _, err := io.ReadFull(rand, sd.ReuseGuard[:]); err != nil {
		return nil, fmt.Errorf("mls: reuse guard: %w", err)
	}

	// PrivateMessageContent (Section 6.3.1).
	b := cryptobyte.NewBuilder(make([]byte, 0, len(c.ApplicationData)+len(ac.Auth.Signature)+len(ac.Auth.ConfirmationTag)+padding+16+s.nk))
	c.marshalBody(b)
	ac.Auth.marshal(b, c.ContentType)
	b.AddBytes(make([]byte, padding))
	plaintext, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: PrivateMessageContent: %w", err)
	}
	aad, err := privateContentAAD(c.GroupID, c.Epoch, c.ContentType, c.AuthenticatedData)
	if err != nil {
		return nil, err
	}

	key, err := p.tree.NextKey(c.Sender.LeafIndex, ratchetFor(c.ContentType))
	if err != nil {
		return nil, err
	}
	defer key.Erase()
	sd.Generation = key.Generation
	aead, err := s.NewAEAD(key.Key)
	if err != nil {
		return nil, err
	}
	nonce := applyReuseGuard(key.Nonce, sd.ReuseGuard)
	ciphertext := aead.Seal(plaintext[:0], nonce, plaintext, aad)
	clear(nonce)

	// SenderData (Section 6.3.2).
	sdKey, sdNonce, err := s.SenderDataKeyNonce(p.senderDataSecret, ciphertext)
	if err != nil {
		return nil, err
	}
	defer clear(sdKey)
	sdAEAD, err := s.NewAEAD(sdKey)
	if err != nil {
		return nil, err
	}
	sdAAD, err := senderDataAAD(c.GroupID, c.Epoch, c.ContentType)
	if err != nil {
		return nil, err
	}
	sdPlain, err := marshal(sd.marshal)
	if err != nil {
		return nil, err
	}
	encSD := sdAEAD.Seal(sdPlain[:0], sdNonce, sdPlain, sdAAD)
	return &PrivateMessage{
		GroupID:             bytes.Clone(c.GroupID),
		Epoch:               c.Epoch,
		ContentType:         c.ContentType,
		AuthenticatedData:   bytes.Clone(c.AuthenticatedData),
		EncryptedSenderData: encSD,
		Ciphertext:          ciphertext,
	}, nil
}

// UnprotectPrivate decrypts and authenticates a PrivateMessage of the
// current epoch (RFC 9420, Section 6.3). The content key is consumed only
// if the content decrypts, parses with all-zero padding and its signature
// verifies with the key keyFor returns; otherwise the secret tree is left
// unchanged. As for PublicMessage, a commit's confirmation tag is left to
// the group layer. Errors: ErrWrongGroup, ErrWrongEpoch, ErrDecrypt,
// ErrUnknownSender, ErrReplay, ErrGenerationTooFar, ErrInvalidMessage,
// ErrInvalidSignature.
func (p *MessageProtector) UnprotectPrivate(pm *PrivateMessage, keyFor SenderKeyFunc) (*AuthenticatedContent, error) {
	return p.unprotectPrivate(pm, keyFor, nil)
}

// unprotectPrivate is UnprotectPrivate with a further condition for
// consuming the key: accept, if not nil, runs on the authenticated content
// while the key is held, and the key is consumed only if it returns nil
// (its error is returned as is). The group layer validates a handshake
// message there, so that one it rejects can still be opened later.
func (p *MessageProtector) unprotectPrivate(pm *PrivateMessage, keyFor SenderKeyFunc, accept func(*AuthenticatedContent) error) (*AuthenticatedContent, error) {
	ac, _, _, err := p.decryptPrivate(pm, keyFor, p.tree.Open, func(ac *AuthenticatedContent, vk *VerifyingKey) error {
		if err := ac.verifySignature(vk, p.groupContextEnc); err != nil {
			return err
		}
		if accept != nil {
			return accept(ac)
		}
		return nil
	})
	return ac, err
}

// decryptPrivate opens a PrivateMessage's sender data and content (RFC
// 9420, Sections 6.3.1 and 6.3.2) with the content key open gives (the
// tree's Open, which consumes it if check returns nil, or peek, which
// never does) and returns the content with its sender's signature key
// and generation. check, if not nil, runs while the key is held; the
// signature is verified only there.
func (p *MessageProtector) decryptPrivate(pm *PrivateMessage, keyFor SenderKeyFunc,
	open func(LeafIndex, RatchetType, uint32, func(key, nonce []byte) error) error,
	check func(*AuthenticatedContent, *VerifyingKey) error) (*AuthenticatedContent, *VerifyingKey, uint32, error) {
	if err := p.checkEpoch(pm.GroupID, pm.Epoch); err != nil {
		return nil, nil, 0, err
	}
	if !pm.ContentType.valid() {
		return nil, nil, 0, fmt.Errorf("mls: content type %d: %w", pm.ContentType, ErrInvalidMessage)
	}
	s := p.suite

	sdKey, sdNonce, err := s.SenderDataKeyNonce(p.senderDataSecret, pm.Ciphertext)
	if err != nil {
		return nil, nil, 0, err
	}
	defer clear(sdKey)
	sdAEAD, err := s.NewAEAD(sdKey)
	if err != nil {
		return nil, nil, 0, err
	}
	sdAAD, err := senderDataAAD(pm.GroupID, pm.Epoch, pm.ContentType)
	if err != nil {
		return nil, nil, 0, err
	}
	sdPlain, err := sdAEAD.Open(nil, sdNonce, pm.EncryptedSenderData, sdAAD)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("mls: sender data: %w", ErrDecrypt)
	}
	var sd SenderData
	if err := unmarshalAll("SenderData", sdPlain, sd.unmarshal); err != nil {
		return nil, nil, 0, err
	}
	if err := p.checkMemberLeaf(sd.LeafIndex); err != nil {
		return nil, nil, 0, err
	}
	aad, err := privateContentAAD(pm.GroupID, pm.Epoch, pm.ContentType, pm.AuthenticatedData)
	if err != nil {
		return nil, nil, 0, err
	}

	var ac *AuthenticatedContent
	var vk *VerifyingKey
	err = open(sd.LeafIndex, ratchetFor(pm.ContentType), sd.Generation, func(key, nonce []byte) error {
		aead, err := s.NewAEAD(key)
		if err != nil {
			return err
		}
		n := applyReuseGuard(nonce, sd.ReuseGuard)
		defer clear(n)
		plaintext, err := aead.Open(nil, n, pm.Ciphertext, aad)
		if err != nil {
			return fmt.Errorf("mls: PrivateMessage content: %w", ErrDecrypt)
		}
		cand := &AuthenticatedContent{
			WireFormat: WireFormatPrivateMessage,
			Content: FramedContent{
				GroupID:           bytes.Clone(pm.GroupID),
				Epoch:             pm.Epoch,
				Sender:            MemberSender(sd.LeafIndex),
				AuthenticatedData: bytes.Clone(pm.AuthenticatedData),
				ContentType:       pm.ContentType,
			},
		}
		if err := cand.unmarshalPrivateContent(plaintext); err != nil {
			return err
		}
		k, err := keyFor(cand)
		if err != nil {
			return fmt.Errorf("mls: PrivateMessage sender: %w", err)
		}
		if check != nil {
			if err := check(cand, k); err != nil {
				return err
			}
		}
		ac, vk = cand, k
		return nil
	})
	if err != nil {
		return nil, nil, 0, err
	}
	return ac, vk, sd.Generation, nil
}

// unmarshalPrivateContent decodes PrivateMessageContent (RFC 9420, Section
// 6.3.1) into ac, whose ContentType is already set, and checks that the
// padding is all zero.
func (ac *AuthenticatedContent) unmarshalPrivateContent(plaintext []byte) error {
	s := cryptobyte.String(plaintext)
	if !ac.Content.unmarshalBody(&s) || !ac.Auth.unmarshal(&s, ac.Content.ContentType) {
		return fmt.Errorf("mls: decoding PrivateMessageContent: %w", ErrDecode)
	}
	for _, c := range s {
		if c != 0 {
			return fmt.Errorf("mls: PrivateMessageContent padding not zero: %w", ErrInvalidMessage)
		}
	}
	return nil
}

// ProtectApplication frames, signs and encrypts application data from the
// member at leaf (RFC 9420, Sections 6.1 and 6.3), with padding zero bytes
// of padding and a reuse guard from rand.
func (p *MessageProtector) ProtectApplication(leaf LeafIndex, key *SigningKey, data, authenticatedData []byte, padding int, rand io.Reader) (*PrivateMessage, error) {
	ac, err := p.NewAuthenticatedContent(WireFormatPrivateMessage, FramedContent{
		Sender:            MemberSender(leaf),
		AuthenticatedData: authenticatedData,
		ContentType:       ContentTypeApplication,
		ApplicationData:   data,
	}, key)
	if err != nil {
		return nil, err
	}
	return p.ProtectPrivate(ac, padding, rand)
}

// UnprotectApplication decrypts a PrivateMessage that must carry
// application data and returns the sender's leaf, the data and the
// authenticated data.
func (p *MessageProtector) UnprotectApplication(pm *PrivateMessage, keyFor SenderKeyFunc) (leaf LeafIndex, data, authenticatedData []byte, err error) {
	if pm.ContentType != ContentTypeApplication {
		return 0, nil, nil, fmt.Errorf("mls: %v content where application data was expected: %w", pm.ContentType, ErrInvalidMessage)
	}
	ac, err := p.UnprotectPrivate(pm, keyFor)
	if err != nil {
		return 0, nil, nil, err
	}
	return ac.Content.Sender.LeafIndex, ac.Content.ApplicationData, ac.Content.AuthenticatedData, nil
}
