package mls

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// MessageKind says what ProcessMessage found in a message.
type MessageKind uint8

// Kinds of processed messages.
const (
	// KindApplication is application data, decrypted and authenticated.
	KindApplication MessageKind = iota + 1
	// KindProposal is a proposal, validated and cached for a later commit.
	KindProposal
	// KindCommit is a Commit, validated and staged; Merge it to advance.
	KindCommit
)

// ProcessedMessage is the result of ProcessMessage.
type ProcessedMessage struct {
	Kind MessageKind
	// Epoch is the epoch the message belongs to (a past epoch for late
	// application messages).
	Epoch  uint64
	Sender Sender
	// AuthenticatedData is the message's authenticated_data.
	AuthenticatedData []byte
	// ApplicationData is set for KindApplication.
	ApplicationData []byte
	// Proposal and ProposalRef are set for KindProposal.
	Proposal    *Proposal
	ProposalRef []byte
	// Commit is set for KindCommit.
	Commit *StagedCommit
}

// ProcessOptions tune ProcessMessage; the zero value is the normal case.
type ProcessOptions struct {
	// Now is the time KeyPackage lifetimes are checked against.
	Now time.Time

	// IgnoreLifetimes skips the lifetime check of the leaves this message
	// carries. RFC 9420, Section 7.3 makes that check RECOMMENDED, not
	// required, for received leaves, since a leaf may expire between
	// sending and receipt: a client catching up on a backlog of old
	// messages, or replaying stored history, sets it.
	IgnoreLifetimes bool
}

// maxMessageSize bounds what ProcessMessage decodes.
const maxMessageSize = 1 << 26

// ProcessMessage handles one MLSMessage of this group (RFC 9420, Sections
// 6, 12 and 14): application data is decrypted (from this epoch or a
// retained past one), a proposal is validated and cached, a commit is
// validated and returned staged. A failure leaves the group unchanged and
// returns a typed error (ErrWrongGroup, ErrWrongEpoch, ErrDecode,
// ErrDecrypt, ErrInvalidSignature, ErrInvalidMembershipTag, ErrUnknownMember,
// ErrInvalidProposal, ErrInvalidCommit, ErrReplay, ...). The member's own
// commit received back yields ErrOwnCommit (merge the StagedCommit that
// Commit returned instead); its own proposals and application messages
// yield ErrOwnMessage. A PrivateMessage consumes its key in the secret
// tree only when it is accepted, so a rejected one leaves the state
// unchanged and a second delivery of an accepted one fails with
// ErrReplay.
func (g *Group) ProcessMessage(data []byte, opts ProcessOptions) (*ProcessedMessage, error) {
	if g.erased {
		return nil, ErrErased
	}
	if len(data) > maxMessageSize {
		return nil, fmt.Errorf("mls: message of %d bytes: %w", len(data), ErrTooLarge)
	}
	m, err := UnmarshalMLSMessage(data)
	if err != nil {
		return nil, err
	}
	if m.Version != g.ctx.Version {
		return nil, fmt.Errorf("mls: message version %d: %w", m.Version, ErrInvalidMessage)
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		return g.processPublic(m.PublicMessage, data, &opts)
	case WireFormatPrivateMessage:
		return g.processPrivate(m.PrivateMessage, data, &opts)
	}
	return nil, fmt.Errorf("mls: wire format %d is not a group message: %w", m.WireFormat, ErrInvalidMessage)
}

// senderKey returns the signature key of a message's sender in this epoch
// (RFC 9420, Section 6.1).
func (g *Group) senderKey(tree *RatchetTree) SenderKeyFunc {
	return func(ac *AuthenticatedContent) (*VerifyingKey, error) {
		var raw []byte
		switch ac.Content.Sender.Type {
		case SenderTypeMember:
			ln := tree.LeafNode(ac.Content.Sender.LeafIndex)
			if ln == nil {
				return nil, fmt.Errorf("leaf %d: %w: %w", ac.Content.Sender.LeafIndex, ErrUnknownMember, ErrUnknownSender)
			}
			raw = ln.SignatureKey
		case SenderTypeNewMemberCommit:
			if ac.Content.Commit == nil || ac.Content.Commit.Path == nil {
				return nil, &CommitError{Reason: "external commit without a path"}
			}
			raw = ac.Content.Commit.Path.LeafNode.SignatureKey
		case SenderTypeNewMemberProposal:
			if ac.Content.Proposal == nil || ac.Content.Proposal.Add == nil {
				return nil, fmt.Errorf("new member proposal is not an Add: %w", ErrInvalidMessage)
			}
			raw = ac.Content.Proposal.Add.KeyPackage.LeafNode.SignatureKey
		case SenderTypeExternal:
			es, err := g.externalSenders()
			if err != nil {
				return nil, err
			}
			i := ac.Content.Sender.SenderIndex
			if uint64(i) >= uint64(len(es)) {
				return nil, fmt.Errorf("external sender %d: %w", i, ErrUnknownSender)
			}
			raw = es[i].SignatureKey
		default:
			return nil, fmt.Errorf("sender type %d: %w", ac.Content.Sender.Type, ErrUnknownSender)
		}
		k, err := g.suite.ParseVerifyingKey(raw)
		if err != nil {
			return nil, fmt.Errorf("sender signature key: %w", err)
		}
		return k, nil
	}
}

// ExternalSender is an entry of the external_senders extension (RFC 9420,
// Section 12.1.8.1).
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// ExternalSendersExtension encodes the external_senders GroupContext extension.
func ExternalSendersExtension(senders []ExternalSender) (Extension, error) {
	data, err := marshal(func(b *cryptobyte.Builder) {
		addVarVector(b, func(b *cryptobyte.Builder) {
			for i := range senders {
				addVarBytes(b, senders[i].SignatureKey)
				senders[i].Credential.marshal(b)
			}
		})
	})
	return Extension{Type: ExtensionExternalSenders, Data: data}, err
}

func (g *Group) externalSenders() ([]ExternalSender, error) {
	e, ok := g.ctx.Extensions.Find(ExtensionExternalSenders)
	if !ok {
		return nil, fmt.Errorf("no external_senders extension: %w", ErrUnknownSender)
	}
	var out []ExternalSender
	err := unmarshalAll("external_senders", e.Data, func(s *cryptobyte.String) bool {
		return readVectorElems(s, func(s *cryptobyte.String) bool {
			var es ExternalSender
			if !readVarBytes(s, &es.SignatureKey) || !es.Credential.unmarshal(s) {
				return false
			}
			out = append(out, es)
			return true
		})
	})
	return out, err
}

func (g *Group) processPublic(pm *PublicMessage, data []byte, opts *ProcessOptions) (*ProcessedMessage, error) {
	c := &pm.Content
	if !bytes.Equal(c.GroupID, g.ctx.GroupID) {
		return nil, fmt.Errorf("mls: message for group %x: %w", c.GroupID, ErrWrongGroup)
	}
	if c.Sender.Type == SenderTypeMember && c.Sender.LeafIndex == g.own && c.Epoch == g.ctx.Epoch {
		if c.ContentType == ContentTypeCommit {
			return nil, ErrOwnCommit
		}
		return nil, ErrOwnMessage
	}
	if g.reinit != nil {
		return nil, fmt.Errorf("mls: group was reinitialised: %w", ErrWrongEpoch)
	}
	raw, ok := splitPublicMessage(data, pm)
	if !ok {
		return nil, fmt.Errorf("mls: PublicMessage layout: %w", ErrDecode)
	}
	ac, err := g.msg.unprotectPublicRaw(pm, raw, g.senderKey(g.tree))
	if err != nil {
		return nil, err
	}
	return g.processContentRaw(ac, data, opts, raw)
}

// publicRaw holds encodings sliced from a PublicMessage as received, so
// that the signature, the membership tag and the transcript hash need no
// re-encoding of the (possibly large) content: prefix is
// version || wire_format || FramedContent, which FramedContentTBS, the
// AuthenticatedContentTBM and the ConfirmedTranscriptHashInput share, and
// auth is the FramedContentAuthData. The sender signed the canonical
// encoding, so non-canonical bytes simply fail to verify.
type publicRaw struct {
	prefix, auth []byte
}

func varLen(v []byte) int { return len(appendVarint(nil, uint32(len(v)))) + len(v) }

// splitPublicMessage slices data, an MLSMessage that decoded to pm.
func splitPublicMessage(data []byte, pm *PublicMessage) (publicRaw, bool) {
	authLen := varLen(pm.Auth.Signature)
	if pm.Content.ContentType == ContentTypeCommit {
		authLen += varLen(pm.Auth.ConfirmationTag)
	}
	tagLen := 0
	if pm.Content.Sender.Type == SenderTypeMember {
		tagLen = varLen(pm.MembershipTag)
	}
	end := len(data) - authLen - tagLen
	if end < 4 {
		return publicRaw{}, false
	}
	return publicRaw{prefix: data[:end], auth: data[end : end+authLen]}, true
}

// unprotectPublicRaw is MessageProtector.UnprotectPublic (RFC 9420,
// Section 6.2) over the received encodings.
func (p *MessageProtector) unprotectPublicRaw(pm *PublicMessage, raw publicRaw, keyFor SenderKeyFunc) (*AuthenticatedContent, error) {
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
	tbs := make([]byte, 0, len(raw.prefix)+len(p.groupContextEnc)+len(raw.auth))
	tbs = append(append(tbs, raw.prefix...), p.groupContextEnc...)
	if pm.Content.Sender.Type == SenderTypeMember {
		if err := p.checkMemberLeaf(pm.Content.Sender.LeafIndex); err != nil {
			return nil, err
		}
		tbm := append(tbs, raw.auth...)
		if !equalConstantTime(p.suite.MAC(p.membershipKey, tbm), pm.MembershipTag) {
			return nil, ErrInvalidMembershipTag
		}
	} else {
		// FramedContentTBS carries the group context only for member and
		// new_member_commit senders.
		if pm.Content.Sender.Type != SenderTypeNewMemberCommit {
			tbs = tbs[:len(raw.prefix)]
		}
	}
	key, err := keyFor(ac)
	if err != nil {
		return nil, fmt.Errorf("mls: PublicMessage sender: %w", err)
	}
	if err := key.VerifyWithLabel(framedContentTBSLabel, tbs, ac.Auth.Signature); err != nil {
		return nil, err
	}
	return ac, nil
}

func (g *Group) processPrivate(pm *PrivateMessage, data []byte, opts *ProcessOptions) (*ProcessedMessage, error) {
	if !bytes.Equal(pm.GroupID, g.ctx.GroupID) {
		return nil, fmt.Errorf("mls: message for group %x: %w", pm.GroupID, ErrWrongGroup)
	}
	msg, tree := g.msg, g.tree
	if pm.Epoch != g.ctx.Epoch {
		msg, tree = nil, nil
		for _, p := range g.past {
			if p.ctx.Epoch == pm.Epoch {
				msg, tree = p.msg, p.tree
			}
		}
		// Only application data is accepted from a past epoch: its
		// handshake messages can no longer take effect.
		if msg == nil || pm.ContentType != ContentTypeApplication {
			return nil, fmt.Errorf("mls: message for epoch %d in epoch %d: %w", pm.Epoch, g.ctx.Epoch, ErrWrongEpoch)
		}
	} else if g.reinit != nil && pm.ContentType != ContentTypeApplication {
		return nil, fmt.Errorf("mls: group was reinitialised: %w", ErrWrongEpoch)
	}
	if leaf, err := msg.peekSender(pm); err != nil {
		return nil, err
	} else if leaf == g.own {
		if pm.ContentType == ContentTypeCommit {
			return nil, ErrOwnCommit
		}
		return nil, ErrOwnMessage
	}
	leaf, _ := msg.peekSender(pm)
	// A handshake message is validated while its key is held, and the key
	// is consumed only if the message is accepted: a commit rejected now
	// (say, for a proposal not yet received) can be processed again.
	var handshake *ProcessedMessage
	var accept func(*AuthenticatedContent) error
	if pm.ContentType != ContentTypeApplication {
		accept = func(ac *AuthenticatedContent) error {
			var err error
			handshake, err = g.processContent(ac, data, opts)
			return err
		}
	}
	done := msg.tree.snapshotLeaf(leaf)
	ac, err := msg.unprotectPrivate(pm, g.senderKey(tree), accept)
	done(err != nil)
	if err != nil {
		return nil, err
	}
	if accept != nil {
		return handshake, nil
	}
	return &ProcessedMessage{
		Kind: KindApplication, Epoch: pm.Epoch, Sender: ac.Content.Sender,
		AuthenticatedData: ac.Content.AuthenticatedData, ApplicationData: ac.Content.ApplicationData,
	}, nil
}

// peekSender decrypts only the sender data of a PrivateMessage of this
// epoch (RFC 9420, Section 6.3.2), consuming no key.
func (p *MessageProtector) peekSender(pm *PrivateMessage) (LeafIndex, error) {
	s := p.suite
	sdKey, sdNonce, err := s.SenderDataKeyNonce(p.senderDataSecret, pm.Ciphertext)
	if err != nil {
		return 0, err
	}
	defer clear(sdKey)
	aead, err := s.NewAEAD(sdKey)
	if err != nil {
		return 0, err
	}
	aad, err := senderDataAAD(pm.GroupID, pm.Epoch, pm.ContentType)
	if err != nil {
		return 0, err
	}
	plain, err := aead.Open(nil, sdNonce, pm.EncryptedSenderData, aad)
	if err != nil {
		return 0, fmt.Errorf("mls: sender data: %w", ErrDecrypt)
	}
	var sd SenderData
	if err := unmarshalAll("SenderData", plain, sd.unmarshal); err != nil {
		return 0, err
	}
	return sd.LeafIndex, nil
}

func (g *Group) processContent(ac *AuthenticatedContent, data []byte, opts *ProcessOptions) (*ProcessedMessage, error) {
	return g.processContentRaw(ac, data, opts, publicRaw{})
}

func (g *Group) processContentRaw(ac *AuthenticatedContent, data []byte, opts *ProcessOptions, raw publicRaw) (*ProcessedMessage, error) {
	c := &ac.Content
	switch c.ContentType {
	case ContentTypeProposal:
		ref, err := g.suite.ProposalRef(ac)
		if err != nil {
			return nil, err
		}
		if err := g.checkProposal(c.Proposal, c.Sender, opts); err != nil {
			return nil, err
		}
		if g.findProposal(ref) == nil {
			g.proposals = append(g.proposals, cachedProposal{ref: ref, sender: c.Sender, proposal: c.Proposal})
		}
		return &ProcessedMessage{Kind: KindProposal, Epoch: c.Epoch, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData, Proposal: c.Proposal, ProposalRef: ref}, nil
	case ContentTypeCommit:
		sc, err := g.stageReceivedCommit(ac, opts, raw)
		if err != nil {
			return nil, err
		}
		sc.Message = bytes.Clone(data)
		return &ProcessedMessage{Kind: KindCommit, Epoch: c.Epoch, Sender: c.Sender, AuthenticatedData: c.AuthenticatedData, Commit: sc}, nil
	}
	return nil, fmt.Errorf("mls: %v content in a handshake message: %w", c.ContentType, ErrInvalidMessage)
}

// checkProposal validates a proposal on its own as it arrives (RFC 9420,
// Section 12.2); the checks that need the whole list run at commit time.
func (g *Group) checkProposal(p *Proposal, sender Sender, opts *ProcessOptions) error {
	if p == nil || p.body() == nil {
		return &ProposalError{Index: -1, Reason: "empty proposal"}
	}
	v, err := g.leafValidation(opts.Now, opts.IgnoreLifetimes)
	if err != nil {
		return &ProposalError{Index: -1, Reason: "required_capabilities", Cause: err}
	}
	switch sender.Type {
	case SenderTypeExternal:
		switch p.Type {
		case ProposalTypeAdd, ProposalTypeRemove, ProposalTypePSK, ProposalTypeReInit, ProposalTypeGroupContextExtensions:
		default:
			return &ProposalError{Index: -1, Reason: fmt.Sprintf("proposal type %d from an external sender", p.Type)}
		}
	case SenderTypeNewMemberProposal:
		if p.Type != ProposalTypeAdd {
			return &ProposalError{Index: -1, Reason: "new member proposal is not an Add"}
		}
	}
	switch p.Type {
	case ProposalTypeAdd:
		if err := ValidateKeyPackage(g.suite, g.ctx.Version, &p.Add.KeyPackage, v); err != nil {
			return &ProposalError{Index: -1, Reason: "Add", Cause: err}
		}
	case ProposalTypeUpdate:
		if sender.Type != SenderTypeMember {
			return &ProposalError{Index: -1, Reason: "Update from a non-member"}
		}
		if err := g.tree.ValidateLeafNode(&p.Update.LeafNode, sender.LeafIndex, LeafNodeSourceUpdate, v); err != nil {
			return &ProposalError{Index: -1, Reason: "Update", Cause: err}
		}
		if old := g.tree.LeafNode(sender.LeafIndex); old != nil {
			if err := g.cfg.checkCredentialChange(sender.LeafIndex, &old.Credential, &p.Update.LeafNode.Credential); err != nil {
				return &ProposalError{Index: -1, Reason: "Update", Cause: err}
			}
		}
	case ProposalTypeRemove:
		if g.tree.LeafNode(p.Remove.Removed) == nil {
			return &ProposalError{Index: -1, Reason: fmt.Sprintf("Remove of leaf %d", p.Remove.Removed), Cause: ErrUnknownMember}
		}
	case ProposalTypeExternalInit:
		return &ProposalError{Index: -1, Reason: "ExternalInit sent as a standalone proposal"}
	}
	return nil
}

// checkCommitCredentials applies the group's CredentialPolicy to the leaf a
// Commit's UpdatePath puts in place of the committer's (RFC 9420, Sections
// 5.3.1 and 7.9) and, for an external commit that removes a leaf (a
// resync), to that leaf replaced by the joiner's (Section 12.4.3.2: the
// new leaf must be acceptable as an Update of the removed one).
func (g *Group) checkCommitCredentials(commit *Commit, committer Sender, resolved []resolvedProposal) error {
	if commit.Path == nil {
		return nil
	}
	next := &commit.Path.LeafNode.Credential
	if committer.Type != SenderTypeNewMemberCommit {
		if old := g.tree.LeafNode(committer.LeafIndex); old != nil {
			if err := g.cfg.checkCredentialChange(committer.LeafIndex, &old.Credential, next); err != nil {
				return &CommitError{Reason: "update path leaf", Cause: err}
			}
		}
		return nil
	}
	for _, rp := range resolved {
		if rp.proposal.Type != ProposalTypeRemove {
			continue
		}
		r := rp.proposal.Remove.Removed
		old := g.tree.LeafNode(r)
		if old == nil {
			return &CommitError{Reason: fmt.Sprintf("external commit removes blank leaf %d", r), Cause: ErrUnknownMember}
		}
		if err := g.cfg.checkCredentialChange(r, &old.Credential, next); err != nil {
			return &CommitError{Reason: "external commit removes another member's leaf", Cause: err}
		}
	}
	return nil
}

// stageReceivedCommit validates a Commit from another member or an
// external joiner and computes the next epoch (RFC 9420, Sections 12.4.2
// and 12.4.3.2). Nothing of g changes.
func (g *Group) stageReceivedCommit(ac *AuthenticatedContent, opts *ProcessOptions, raw publicRaw) (*StagedCommit, error) {
	s := g.suite
	c := &ac.Content
	commit := c.Commit
	if commit == nil {
		return nil, &CommitError{Reason: "no commit body"}
	}
	committer := c.Sender
	external := committer.Type == SenderTypeNewMemberCommit
	if committer.Type != SenderTypeMember && !external {
		return nil, &CommitError{Reason: fmt.Sprintf("commit from a sender of type %d", committer.Type)}
	}
	if external && ac.WireFormat != WireFormatPublicMessage {
		return nil, &CommitError{Reason: "external commit not in a PublicMessage"}
	}
	if len(ac.Auth.ConfirmationTag) != s.HashSize() {
		return nil, &CommitError{Reason: "confirmation tag length"}
	}
	resolved, err := g.resolveProposals(commit.Proposals, committer)
	if err != nil {
		return nil, err
	}
	tree := g.tree.Fork()
	ap, err := g.validateAndApply(tree, resolved, committer, opts.Now, opts.IgnoreLifetimes, 0)
	if err != nil {
		return nil, err
	}
	if ap.pathRequired && commit.Path == nil {
		return nil, &CommitError{Reason: "path required but absent"}
	}
	// The credential rules run before the self-removed return below: a
	// member removed by a forged external commit (anyone holding the
	// GroupInfo can sign one) must not accept it as its removal.
	if err := g.checkCommitCredentials(commit, committer, resolved); err != nil {
		return nil, err
	}
	sc := &StagedCommit{Sender: committer, Epoch: g.ctx.Epoch + 1, Proposals: proposalsOf(resolved)}
	if commit.Path != nil {
		sc.PathIdentity = bytes.Clone(commit.Path.LeafNode.Credential.Identity)
	}
	if ap.selfRemoved {
		sc.SelfRemoved = true
		return sc, nil
	}
	sender := committer.LeafIndex
	if external {
		// RFC 9420, Section 12.4.3.2: the joiner takes the leftmost blank
		// leaf (after any Remove of its old leaf). A placeholder with the
		// joiner's credential stands there until the path is merged.
		placeholder := commit.Path.LeafNode.Clone()
		placeholder.EncryptionKey = nil
		sender = tree.AddLeaf(placeholder)
		sc.Sender = Sender{Type: SenderTypeNewMemberCommit, LeafIndex: sender}
	}
	var commitSecret []byte
	var ps *PathSecrets
	if commit.Path != nil {
		v, err := g.leafValidation(opts.Now, opts.IgnoreLifetimes)
		if err != nil {
			return nil, err
		}
		if v.RequiredCapabilities, err = requiredCapabilities(ap.extensions); err != nil {
			return nil, err
		}
		ps, err = tree.ProcessUpdatePath(&ProcessPathParams{
			Sender:     sender,
			Path:       commit.Path,
			Validation: v,
			Exclude:    ap.added,
			Receiver:   g.own,
			PrivateKey: func(x NodeIndex) *HPKEPrivateKey {
				if x == g.own.NodeIndex() && ap.ownUpdateKey != nil {
					return ap.ownUpdateKey
				}
				return g.nodeKeys[x]
			},
			GroupContext: g.provisionalContext(ap.extensions),
		})
		if err != nil {
			return nil, &CommitError{Reason: "update path", Cause: err}
		}
		defer clearPathSecrets(ps)
		commitSecret = ps.CommitSecret
	}
	initSecret := g.secrets.InitSecret
	if external {
		kp, err := s.ExternalKeyPair(g.secrets.ExternalSecret)
		if err != nil {
			return nil, err
		}
		initSecret, err = s.ExternalInitSecret(kp, ap.externalInit.KEMOutput)
		kp.Erase()
		if err != nil {
			return nil, &CommitError{Reason: "external init", Cause: err}
		}
		defer clear(initSecret)
	}
	psks, err := g.resolvePSKs(ap.psks)
	if err != nil {
		return nil, &CommitError{Reason: "PSK", Cause: err}
	}
	var confirmed []byte
	if raw.prefix != nil {
		// ConfirmedTranscriptHashInput = wire_format || content || signature<V>.
		h := s.newHash()
		h.Write(g.interim)
		h.Write(raw.prefix[2:])
		h.Write(raw.auth[:varLen(ac.Auth.Signature)])
		confirmed = h.Sum(nil)
	}
	next, secrets, err := g.nextEpochWith(tree, ap, ac, commitSecret, initSecret, psks, ac.Auth.ConfirmationTag, confirmed)
	if err != nil {
		return nil, err
	}
	if ps != nil {
		for x, k := range ps.NodeKeys {
			next.nodeKeys[x] = k
		}
		next.pruneNodeKeys()
	}
	if err := next.setSecrets(secrets); err != nil {
		return nil, err
	}
	sc.next = next
	return sc, nil
}

// Propose creates a proposal message of this epoch, caches it (so a
// later Commit includes it by reference) and returns the MLSMessage and
// its ProposalRef (RFC 9420, Section 12.1).
func (g *Group) Propose(p *Proposal, private bool, rand io.Reader) (msg, ref []byte, err error) {
	return g.propose(p, private, nil, rand)
}

func (g *Group) propose(p *Proposal, private bool, leafKey *HPKEPrivateKey, rand io.Reader) (msg, ref []byte, err error) {
	if g.erased {
		return nil, nil, ErrErased
	}
	wf := WireFormatPublicMessage
	if private {
		wf = WireFormatPrivateMessage
	}
	ac, err := g.msg.NewAuthenticatedContent(wf, FramedContent{
		Sender: MemberSender(g.own), ContentType: ContentTypeProposal, Proposal: p,
	}, g.sigKey)
	if err != nil {
		return nil, nil, err
	}
	if ref, err = g.suite.ProposalRef(ac); err != nil {
		return nil, nil, err
	}
	var m *MLSMessage
	if private {
		pm, err := g.msg.ProtectPrivate(ac, g.cfg.padding(0), rand)
		if err != nil {
			return nil, nil, err
		}
		m, _ = NewMLSMessage(pm)
	} else {
		pm, err := g.msg.ProtectPublic(ac)
		if err != nil {
			return nil, nil, err
		}
		m, _ = NewMLSMessage(pm)
	}
	if msg, err = m.MarshalBinary(); err != nil {
		return nil, nil, err
	}
	g.proposals = append(g.proposals, cachedProposal{ref: ref, sender: MemberSender(g.own), proposal: p, leafKey: leafKey})
	return msg, ref, nil
}

// ProposeUpdate proposes a fresh leaf for this member (RFC 9420, Section
// 12.1.2); its private key is kept with the cached proposal until a commit
// by another member applies it.
func (g *Group) ProposeUpdate(private bool, rand io.Reader) (msg, ref []byte, err error) {
	if g.erased {
		return nil, nil, ErrErased
	}
	key, err := g.suite.GenerateHPKEKeyPair(rand)
	if err != nil {
		return nil, nil, err
	}
	old := g.tree.LeafNode(g.own)
	ln := &LeafNode{
		EncryptionKey: bytes.Clone(key.PublicKey()),
		SignatureKey:  old.SignatureKey,
		Credential:    old.Credential,
		Capabilities:  old.Capabilities,
		Source:        LeafNodeSourceUpdate,
		Extensions:    old.Extensions,
	}
	if err := ln.Sign(g.sigKey, g.ctx.GroupID, g.own); err != nil {
		return nil, nil, err
	}
	return g.propose(&Proposal{Type: ProposalTypeUpdate, Update: &Update{LeafNode: *ln}}, private, key, rand)
}

// ProtectApplication encrypts application data for this epoch, padded to
// the configured block (RFC 9420, Sections 6.3, 15.1), and returns the
// MLSMessage.
func (g *Group) ProtectApplication(data, authenticatedData []byte, rand io.Reader) ([]byte, error) {
	if g.erased {
		return nil, ErrErased
	}
	if g.reinit != nil {
		return nil, fmt.Errorf("mls: group was reinitialised: %w", ErrInvalidMessage)
	}
	pm, err := g.msg.ProtectApplication(g.own, g.sigKey, data, authenticatedData, g.cfg.padding(len(data)+len(authenticatedData)), rand)
	if err != nil {
		return nil, err
	}
	m, _ := NewMLSMessage(pm)
	return m.MarshalBinary()
}

// snapshotLeaf records what deriving leaf's ratchets would change in the
// secret tree (the secrets on its path and their siblings) and returns a
// function that restores it (when called with true) or drops the copies, so that a message that fails to authenticate
// leaves the tree byte for byte as it was. It is a no-op when the leaf's
// ratchets already exist, since the tree itself only commits a ratchet
// step after a successful open.
func (t *SecretTree) snapshotLeaf(leaf LeafIndex) (done func(restore bool)) {
	if _, ok := t.senders[leaf]; ok || uint32(leaf) >= t.nLeaves {
		return func(bool) {}
	}
	saved := map[NodeIndex][]byte{}
	r := root(t.nLeaves)
	for x := leaf.NodeIndex(); ; x = parent(x, t.nLeaves) {
		if sec, ok := t.nodes[x]; ok {
			saved[x] = bytes.Clone(sec)
		} else {
			saved[x] = nil
		}
		if x == r {
			break
		}
		sib := sibling(x, t.nLeaves)
		if sec, ok := t.nodes[sib]; ok {
			saved[sib] = bytes.Clone(sec)
		} else {
			saved[sib] = nil
		}
	}
	return func(restore bool) {
		if !restore {
			for _, sec := range saved {
				clear(sec)
			}
			return
		}
		if rs, ok := t.senders[leaf]; ok {
			for _, r := range rs {
				if r != nil {
					r.erase()
				}
			}
			delete(t.senders, leaf)
		}
		for x, sec := range saved {
			if cur, ok := t.nodes[x]; ok {
				clear(cur)
			}
			if sec == nil {
				delete(t.nodes, x)
			} else {
				t.nodes[x] = sec
			}
		}
	}
}
