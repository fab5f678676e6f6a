package mls

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// ExternalJoinParams are the inputs of JoinExternal.
type ExternalJoinParams struct {
	// GroupInfo is the MLSMessage carrying the group's signed GroupInfo,
	// which must have the external_pub extension.
	GroupInfo []byte
	// RatchetTree is the encoded tree when the GroupInfo lacks the
	// ratchet_tree extension.
	RatchetTree []byte
	// Credential, Capabilities, LeafExtensions and SigningKey make the
	// joiner's leaf; Capabilities gets the version, the suite and the
	// credential type added.
	Credential     Credential
	Capabilities   Capabilities
	LeafExtensions Extensions
	SigningKey     *SigningKey
	// Resync removes the joiner's old leaf, the leaf whose credential
	// equals Credential (RFC 9420, Section 12.4.3.2), e.g. after state loss.
	Resync bool
	// PSKs are the ids of external PSKs the commit injects with
	// PreSharedKey proposals (RFC 9420, Section 12.4.3.2 allows them);
	// their secrets come from Config.PSKs.
	PSKs [][]byte
	// AuthenticatedData is sent with the commit.
	AuthenticatedData []byte
	Config            Config
	Now               time.Time
	Rand              io.Reader
}

// JoinExternal joins a group by external commit (RFC 9420, Section
// 12.4.3.2): it validates the GroupInfo and tree, encapsulates to the
// group's external_pub for the new init_secret, adds itself with a full
// UpdatePath and returns the Group of the new epoch and the commit (an
// MLSMessage PublicMessage) for the members.
func JoinExternal(p *ExternalJoinParams) (*Group, []byte, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: external join: %s", ErrInvalidWelcome, fmt.Sprintf(format, args...))
	}
	if err := p.Config.Validate(); err != nil {
		return nil, nil, err
	}
	m, err := UnmarshalMLSMessage(p.GroupInfo)
	if err != nil {
		return nil, nil, err
	}
	if m.WireFormat != WireFormatGroupInfo {
		return nil, nil, fail("not a GroupInfo")
	}
	gi := m.GroupInfo
	ctx := &gi.GroupContext
	s, err := ctx.CipherSuite.Suite()
	if err != nil {
		return nil, nil, err
	}
	if ctx.Version != ProtocolVersionMLS10 || m.Version != ProtocolVersionMLS10 {
		return nil, nil, fail("version %d", ctx.Version)
	}
	pubExt, ok := gi.Extensions.Find(ExtensionExternalPub)
	if !ok {
		return nil, nil, fail("no external_pub extension")
	}
	externalPub, err := ParseExternalPub(pubExt)
	if err != nil {
		return nil, nil, fail("external_pub: %v", err)
	}
	treeData := p.RatchetTree
	if e, ok := gi.Extensions.Find(ExtensionRatchetTree); ok {
		treeData = e.Data
	}
	if treeData == nil {
		return nil, nil, fail("no ratchet tree")
	}
	rc, err := requiredCapabilities(ctx.Extensions)
	if err != nil {
		return nil, nil, fail("required_capabilities: %v", err)
	}
	// As in JoinFromWelcome, the lifetimes of the leaves already in the
	// tree are not checked (RFC 9420, Section 7.3 only RECOMMENDS it).
	v := &LeafValidation{GroupID: ctx.GroupID, Version: ctx.Version, RequiredCapabilities: rc, Now: p.Now, IgnoreLifetime: true}
	tree, err := ImportRatchetTree(s, treeData, ctx.TreeHash, v)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: external join: %w", ErrInvalidWelcome, err)
	}
	signer := tree.LeafNode(gi.Signer)
	if signer == nil {
		return nil, nil, fail("signer leaf %d is blank", gi.Signer)
	}
	if err := gi.VerifySignature(s, signer.SignatureKey); err != nil {
		return nil, nil, fmt.Errorf("%w: external join: %w", ErrInvalidWelcome, err)
	}
	interim, err := s.InterimTranscriptHash(ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err != nil {
		return nil, nil, err
	}
	ctxEnc, err := ctx.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	sig, err := s.ParseSigningKey(p.SigningKey.Bytes())
	if err != nil {
		return nil, nil, err
	}
	// The joiner's view of epoch n: public state only.
	base := &Group{
		suite: s, cfg: p.Config, ctx: ctx.Clone(), ctxEnc: ctxEnc, tree: tree,
		own: LeafIndex(math.MaxUint32), sigKey: sig, nodeKeys: map[NodeIndex]*HPKEPrivateKey{}, interim: interim,
	}
	kemOutput, initSecret, err := s.ExternalInit(externalPub, p.Rand)
	if err != nil {
		return nil, nil, err
	}
	defer clear(initSecret)
	props := []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: kemOutput}}}}
	if p.Resync {
		found := false
		for l := LeafIndex(0); uint32(l) < tree.LeafCount(); l++ {
			if ln := tree.LeafNode(l); ln != nil && ln.Credential.Equal(&p.Credential) {
				// Members apply this group's policy to the replacement;
				// refuse here what they would refuse.
				if err := p.Config.checkCredentialChange(l, &ln.Credential, &p.Credential); err != nil {
					return nil, nil, fmt.Errorf("mls: resync: %w", err)
				}
				props = append(props, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Remove: &Remove{Removed: l}}})
				found = true
				break
			}
		}
		if !found {
			return nil, nil, fail("resync: no leaf with the joiner's credential")
		}
	}
	for _, id := range p.PSKs {
		nonce := make([]byte, s.HashSize())
		if _, err := io.ReadFull(p.Rand, nonce); err != nil {
			return nil, nil, fmt.Errorf("mls: psk nonce: %w", err)
		}
		props = append(props, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{
			PSK: PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: bytes.Clone(id), PSKNonce: nonce},
		}}})
	}
	committer := Sender{Type: SenderTypeNewMemberCommit}
	resolved, err := base.resolveProposals(props, committer)
	if err != nil {
		return nil, nil, err
	}
	fork := tree.Fork()
	ap, err := base.validateAndApply(fork, resolved, committer, p.Now, false, 0)
	if err != nil {
		return nil, nil, err
	}
	psks, err := resolvePSKs(ap.psks, p.Config.PSKs, nil)
	if err != nil {
		return nil, nil, err
	}
	caps := Capabilities{
		Versions:     appendMissing(cloneSlice(p.Capabilities.Versions), ProtocolVersionMLS10),
		CipherSuites: appendMissing(cloneSlice(p.Capabilities.CipherSuites), s.ID()),
		Extensions:   slices.DeleteFunc(cloneSlice(p.Capabilities.Extensions), ExtensionType.IsDefault),
		Proposals:    slices.DeleteFunc(cloneSlice(p.Capabilities.Proposals), ProposalType.IsDefault),
		Credentials:  appendMissing(cloneSlice(p.Capabilities.Credentials), p.Credential.Type),
	}
	tmpl := &LeafNode{SignatureKey: bytes.Clone(sig.PublicKey()), Credential: p.Credential, Capabilities: caps, Source: LeafNodeSourceCommit, Extensions: p.LeafExtensions}
	if err := checkExtensionsSupported(tmpl, ap.extensions); err != nil {
		return nil, nil, fail("%v", err)
	}
	own := fork.AddLeaf(tmpl)
	up, ps, err := fork.CreateUpdatePath(&CreatePathParams{
		Leaf:         own,
		GroupID:      ctx.GroupID,
		SigningKey:   sig,
		LeafNode:     tmpl,
		GroupContext: base.provisionalContext(ap.extensions),
		Rand:         p.Rand,
	})
	if err != nil {
		return nil, nil, err
	}
	defer clearPathSecrets(ps)
	ac := &AuthenticatedContent{
		WireFormat: WireFormatPublicMessage,
		Content: FramedContent{
			GroupID:           ctx.GroupID,
			Epoch:             ctx.Epoch,
			Sender:            committer,
			AuthenticatedData: bytes.Clone(p.AuthenticatedData),
			ContentType:       ContentTypeCommit,
			Commit:            &Commit{Proposals: props, Path: up},
		},
	}
	if err := ac.sign(sig, ctxEnc); err != nil {
		return nil, nil, err
	}
	base.own = own
	next, secrets, err := base.nextEpoch(fork, ap, ac, ps.CommitSecret, initSecret, psks, nil)
	if err != nil {
		return nil, nil, err
	}
	next.nodeKeys[own.NodeIndex()] = ps.LeafKey
	for x, k := range ps.NodeKeys {
		next.nodeKeys[x] = k
	}
	next.pruneNodeKeys()
	next.cfg.PSKs = p.Config.PSKs
	if err := next.setSecrets(secrets); err != nil {
		return nil, nil, err
	}
	msg, err := NewMLSMessage(&PublicMessage{Content: ac.Content, Auth: ac.Auth})
	if err != nil {
		return nil, nil, err
	}
	enc, err := msg.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	return next, enc, nil
}
