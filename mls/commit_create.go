package mls

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// StagedCommit is a validated Commit whose epoch is computed but not yet
// adopted (RFC 9420, Section 14): the parent Group is untouched, and Merge
// returns the Group of the next epoch. It is what both Commit (for the
// committer, a pending commit) and ProcessMessage (for the other members)
// return, so a fork-choice layer can hold several siblings and merge one.
type StagedCommit struct {
	// Message is the MLSMessage carrying the Commit (for a received commit,
	// the bytes as received).
	Message []byte
	// Welcome is the MLSMessage Welcome for the members the commit adds;
	// nil when it adds none or the commit was received.
	Welcome []byte
	// GroupInfo is the signed GroupInfo of the new epoch, set for own
	// commits that add members (it is inside the Welcome).
	GroupInfo *GroupInfo
	// Sender is the committer.
	Sender Sender
	// Own reports a commit this member created.
	Own bool
	// SelfRemoved reports that the commit removes this member: Merge then
	// fails with ErrRemoved.
	SelfRemoved bool
	// Proposals are the proposals the commit applies, in order.
	Proposals []*Proposal
	// Epoch is the new epoch's number.
	Epoch uint64
	// PathIdentity is, for a received commit with a path, the credential
	// identity of the committer's new leaf: a member the commit removes
	// cannot read it from the next epoch, and the commit may have come
	// encrypted.
	PathIdentity []byte

	next   *Group
	merged bool
}

// NextEpochAuthenticator returns the epoch authenticator of the new epoch,
// which a fork-choice layer may compare before merging.
func (sc *StagedCommit) NextEpochAuthenticator() []byte {
	if sc.next == nil {
		return nil
	}
	return sc.next.EpochAuthenticator()
}

// Merge returns the Group of the new epoch. It can be called once; the
// parent Group remains valid for its own epoch.
func (sc *StagedCommit) Merge() (*Group, error) {
	if sc.SelfRemoved {
		return nil, ErrRemoved
	}
	if sc.merged || sc.next == nil {
		return nil, ErrAlreadyMerged
	}
	sc.merged = true
	sc.next.compactTree()
	return sc.next, nil
}

// Discard erases the secrets of a staged commit that will not be merged.
func (sc *StagedCommit) Discard() {
	if sc.next != nil && !sc.merged {
		sc.next.eraseOwn()
		sc.next = nil
	}
}

// maxForkDepth bounds the chain of copy-on-write trees behind a Group.
// Reads fall through the chain, so past this depth Merge copies the tree
// once (O(n)); amortised over maxForkDepth commits that is cheap.
const maxForkDepth = 32

func (g *Group) compactTree() {
	d := 0
	for t := g.tree; t.base != nil; t = t.base {
		d++
	}
	if d > maxForkDepth {
		g.tree = g.tree.Clone()
	}
}

// CommitOptions are the inputs of Group.Commit.
type CommitOptions struct {
	// Proposals are sent inline in the Commit (by value), after the cached
	// proposals included by reference.
	Proposals []*Proposal
	// SkipCached leaves out the proposals received in this epoch; by
	// default every cached proposal is committed by reference.
	SkipCached bool
	// ForcePath includes an UpdatePath even when no proposal requires one.
	ForcePath bool
	// Private sends the commit as a PrivateMessage instead of a PublicMessage.
	Private bool
	// OmitRatchetTree leaves the ratchet_tree extension out of the GroupInfo
	// (the joiners then need the tree from elsewhere).
	OmitRatchetTree bool
	// WelcomeExternalPub adds the external_pub extension to the Welcome's
	// GroupInfo (it costs a key derivation; joiners by Welcome do not need
	// it, and Group.GroupInfo always includes it for external joins).
	WelcomeExternalPub bool
	// AuthenticatedData is sent in the clear, authenticated.
	AuthenticatedData []byte
	// Now is the time KeyPackage lifetimes are checked against.
	Now time.Time
	// Rand supplies all randomness.
	Rand io.Reader

	ignoreLifetime bool
	// resumption and resumptionUsage allow the first commit of a
	// reinitialised or branched group to inject a resumption PSK of g.
	resumption      *Group
	resumptionUsage ResumptionPSKUsage
}

// Commit creates a Commit of this epoch's cached proposals and opts.Proposals
// (RFC 9420, Section 12.4.1) and returns it staged: the group state is not
// changed (except that a PrivateMessage consumes a handshake key of this
// epoch's secret tree). Merge the StagedCommit once the commit is accepted.
// A path is included when a proposal requires it (Update, Remove,
// ExternalInit, GroupContextExtensions, or no proposal at all) or on request.
func (g *Group) Commit(opts *CommitOptions) (*StagedCommit, error) {
	if g.erased {
		return nil, ErrErased
	}
	if opts == nil || opts.Rand == nil {
		return nil, fmt.Errorf("mls: commit needs options with a random source: %w", ErrInvalidCommit)
	}
	if g.reinit != nil {
		return nil, fmt.Errorf("mls: group was reinitialised: %w", ErrInvalidCommit)
	}
	committer := MemberSender(g.own)
	var list []ProposalOrRef
	if !opts.SkipCached {
		for _, cp := range g.committableProposals() {
			list = append(list, ProposalOrRef{Type: ProposalOrRefReference, Reference: cp.ref})
		}
	}
	for _, p := range opts.Proposals {
		list = append(list, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: p})
	}
	resolved, err := g.resolveProposals(list, committer)
	if err != nil {
		return nil, err
	}
	tree := g.tree.Fork()
	ap, err := g.validateAndApply(tree, resolved, committer, opts.Now, opts.ignoreLifetime, opts.resumptionUsage)
	if err != nil {
		return nil, err
	}
	if ap.selfRemoved {
		return nil, &CommitError{Reason: "commit removes the committer"}
	}
	commit := &Commit{Proposals: list}
	var path *PathSecrets
	if ap.pathRequired || opts.ForcePath {
		up, ps, err := tree.CreateUpdatePath(&CreatePathParams{
			Leaf:         g.own,
			GroupID:      g.ctx.GroupID,
			SigningKey:   g.sigKey,
			Exclude:      ap.added,
			GroupContext: g.provisionalContext(ap.extensions),
			Rand:         opts.Rand,
		})
		if err != nil {
			return nil, err
		}
		commit.Path, path = up, ps
		defer clearPathSecrets(ps)
		if err := g.checkCommitCredentials(commit, committer, nil); err != nil {
			return nil, err
		}
	}
	var commitSecret []byte
	if path != nil {
		commitSecret = path.CommitSecret
	}

	wf := WireFormatPublicMessage
	if opts.Private {
		wf = WireFormatPrivateMessage
	}
	ac, err := g.msg.NewAuthenticatedContent(wf, FramedContent{
		Sender:            committer,
		AuthenticatedData: bytes.Clone(opts.AuthenticatedData),
		ContentType:       ContentTypeCommit,
		Commit:            commit,
	}, g.sigKey)
	if err != nil {
		return nil, err
	}
	psks, err := resolvePSKs(ap.psks, g.cfg.PSKs, g)
	if opts.resumption != nil && err != nil {
		psks, err = resolvePSKs(ap.psks, g.cfg.PSKs, opts.resumption)
	}
	if err != nil {
		return nil, err
	}
	next, secrets, err := g.nextEpoch(tree, ap, ac, commitSecret, g.secrets.InitSecret, psks, nil)
	if err != nil {
		return nil, err
	}
	// The committer's new keys: its leaf and its whole filtered direct path.
	if path != nil {
		next.nodeKeys[g.own.NodeIndex()] = path.LeafKey
		for x, k := range path.NodeKeys {
			next.nodeKeys[x] = k
		}
		next.pruneNodeKeys()
	}

	var msg *MLSMessage
	if opts.Private {
		pad := g.cfg.padding(0)
		pm, err := g.msg.ProtectPrivate(ac, pad, opts.Rand)
		if err != nil {
			secrets.Erase()
			return nil, err
		}
		msg, _ = NewMLSMessage(pm)
	} else {
		pm, err := g.msg.ProtectPublic(ac)
		if err != nil {
			secrets.Erase()
			return nil, err
		}
		msg, _ = NewMLSMessage(pm)
	}
	msgBytes, err := msg.MarshalBinary()
	if err != nil {
		secrets.Erase()
		return nil, err
	}
	sc := &StagedCommit{
		Message:   msgBytes,
		Sender:    committer,
		Own:       true,
		Epoch:     next.ctx.Epoch,
		Proposals: proposalsOf(resolved),
	}
	// The GroupInfo (with the tree, O(n) to encode and sign) is built only
	// for a Welcome; Group.GroupInfo makes one on demand.
	if len(ap.added) > 0 {
		gi, err := next.groupInfo(secrets.ExternalSecret, !opts.OmitRatchetTree, opts.WelcomeExternalPub)
		if err != nil {
			secrets.Erase()
			return nil, err
		}
		sc.GroupInfo = gi
		w, err := next.welcome(gi, secrets, ap, path, opts.Rand)
		if err != nil {
			secrets.Erase()
			return nil, err
		}
		if sc.Welcome, err = w.MarshalBinary(); err != nil {
			secrets.Erase()
			return nil, err
		}
	}
	if err := next.setSecrets(secrets); err != nil {
		return nil, err
	}
	sc.next = next
	return sc, nil
}

func proposalsOf(rs []resolvedProposal) []*Proposal {
	out := make([]*Proposal, len(rs))
	for i := range rs {
		out[i] = rs[i].proposal
	}
	return out
}

// clearPathSecrets zeroes the path and commit secrets, keeping the private
// keys that the new epoch adopts.
func clearPathSecrets(ps *PathSecrets) {
	clear(ps.CommitSecret)
	for _, s := range ps.Secrets {
		clear(s)
	}
}

// provisionalContext returns the GroupContext under which path secrets are
// encrypted: the next epoch, the new tree hash, the old confirmed
// transcript hash and the new extensions (RFC 9420, Section 12.4.1).
func (g *Group) provisionalContext(exts Extensions) GroupContextFunc {
	return func(treeHash []byte) ([]byte, error) {
		ctx := GroupContext{
			Version:                 g.ctx.Version,
			CipherSuite:             g.ctx.CipherSuite,
			GroupID:                 g.ctx.GroupID,
			Epoch:                   g.ctx.Epoch + 1,
			TreeHash:                treeHash,
			ConfirmedTranscriptHash: g.ctx.ConfirmedTranscriptHash,
			Extensions:              exts,
		}
		return ctx.MarshalBinary()
	}
}

// nextEpoch computes the next epoch from a signed commit (RFC 9420,
// Sections 8, 8.2, 12.4.1-12.4.2): transcript hashes, GroupContext, key
// schedule and confirmation tag. For a commit being created it sets
// ac's confirmation tag; for a received one (wantTag != nil) it verifies
// it. The returned secrets still hold the joiner and welcome secrets; the
// caller installs them with setSecrets.
func (g *Group) nextEpoch(tree *RatchetTree, ap *appliedProposals, ac *AuthenticatedContent, commitSecret, initSecret []byte, psks []PSKWithSecret, wantTag []byte) (*Group, *EpochSecrets, error) {
	return g.nextEpochWith(tree, ap, ac, commitSecret, initSecret, psks, wantTag, nil)
}

// nextEpochWith is nextEpoch with the confirmed transcript hash already
// computed (from the received encoding), or nil to compute it from ac.
func (g *Group) nextEpochWith(tree *RatchetTree, ap *appliedProposals, ac *AuthenticatedContent, commitSecret, initSecret []byte, psks []PSKWithSecret, wantTag, confirmed []byte) (*Group, *EpochSecrets, error) {
	s := g.suite
	if confirmed == nil {
		var err error
		if confirmed, err = s.ConfirmedTranscriptHash(g.interim, ac); err != nil {
			return nil, nil, err
		}
	}
	ctx := &GroupContext{
		Version:                 g.ctx.Version,
		CipherSuite:             g.ctx.CipherSuite,
		GroupID:                 g.ctx.GroupID,
		Epoch:                   g.ctx.Epoch + 1,
		TreeHash:                tree.TreeHash(),
		ConfirmedTranscriptHash: confirmed,
		Extensions:              ap.extensions,
	}
	ctxEnc, err := ctx.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	pskSecret, err := s.PSKSecret(psks)
	if err != nil {
		return nil, nil, err
	}
	defer clear(pskSecret)
	secrets, err := s.DeriveEpochSecrets(initSecret, commitSecret, pskSecret, ctxEnc)
	if err != nil {
		return nil, nil, err
	}
	tag := s.ConfirmationTag(secrets.ConfirmationKey, confirmed)
	if wantTag == nil {
		ac.Auth.ConfirmationTag = tag
	} else if !equalConstantTime(tag, wantTag) {
		secrets.Erase()
		return nil, nil, &CommitError{Reason: "confirmation tag", Cause: ErrInvalidConfirmationTag}
	}
	interim, err := s.InterimTranscriptHash(confirmed, tag)
	if err != nil {
		secrets.Erase()
		return nil, nil, err
	}
	next := g.child()
	next.tree = tree
	next.ctx, next.ctxEnc = ctx, ctxEnc
	next.interim = interim
	next.confirmationTag = tag
	next.reinit = ap.reinit
	if ap.ownUpdateKey != nil {
		next.nodeKeys[g.own.NodeIndex()] = ap.ownUpdateKey.clone()
	}
	next.pruneNodeKeys()
	return next, secrets, nil
}

// pruneNodeKeys drops private keys whose node was blanked or replaced.
func (g *Group) pruneNodeKeys() {
	w := g.tree.width()
	for x, k := range g.nodeKeys {
		if uint32(x) >= w || !bytes.Equal(g.tree.encryptionKey(x), k.PublicKey()) {
			delete(g.nodeKeys, x)
		}
	}
}

// clone returns an independent wrapper of the key, so that erasing one
// epoch's copy does not erase another's.
func (k *HPKEPrivateKey) clone() *HPKEPrivateKey {
	return &HPKEPrivateKey{raw: bytes.Clone(k.raw), key: k.key, pub: k.pub}
}

// eraseOwn erases what a never-merged next epoch owns exclusively.
func (g *Group) eraseOwn() {
	if g.secrets != nil {
		g.secrets.Erase()
	}
	for _, k := range g.nodeKeys {
		k.Erase()
	}
	if g.msg != nil {
		g.msg.Erase()
	}
	if g.keys != nil {
		g.keys.Erase()
	}
	g.erased = true
}

// groupInfo builds and signs the GroupInfo of this (new) epoch (RFC 9420,
// Section 12.4.3).
func (g *Group) groupInfo(externalSecret []byte, withTree, withExternalPub bool) (*GroupInfo, error) {
	gi := &GroupInfo{
		GroupContext:    *g.ctx,
		ConfirmationTag: g.confirmationTag,
		Signer:          g.own,
	}
	if withTree {
		ext, err := g.tree.Extension()
		if err != nil {
			return nil, err
		}
		gi.Extensions = append(gi.Extensions, ext)
	}
	if withExternalPub {
		k, err := g.suite.ExternalKeyPair(externalSecret)
		if err != nil {
			return nil, err
		}
		ext, err := ExternalPubExtension(k.PublicKey())
		k.Erase()
		if err != nil {
			return nil, err
		}
		gi.Extensions = append(gi.Extensions, ext)
	}
	if err := gi.Sign(g.sigKey); err != nil {
		return nil, err
	}
	return gi, nil
}

// GroupInfo returns a signed GroupInfo of this epoch, for external joins
// (RFC 9420, Section 12.4.3.2), as an MLSMessage.
func (g *Group) GroupInfo(withTree bool) ([]byte, error) {
	if g.erased {
		return nil, ErrErased
	}
	gi, err := g.groupInfo(g.secrets.ExternalSecret, withTree, true)
	if err != nil {
		return nil, err
	}
	m, err := NewMLSMessage(gi)
	if err != nil {
		return nil, err
	}
	return m.MarshalBinary()
}

// welcome builds the Welcome for the members a commit adds (RFC 9420,
// Section 12.4.3.1): the GroupInfo encrypted under the welcome secret, and
// for each new member the joiner secret, the path secret of the lowest
// node of the committer's path above it, and the PSK ids, encrypted to its
// init key.
func (g *Group) welcome(gi *GroupInfo, secrets *EpochSecrets, ap *appliedProposals, path *PathSecrets, rand io.Reader) (*MLSMessage, error) {
	s := g.suite
	encGI, err := s.EncryptGroupInfo(secrets.WelcomeSecret, gi)
	if err != nil {
		return nil, err
	}
	w := &Welcome{CipherSuite: s.ID(), EncryptedGroupInfo: encGI}
	for i, l := range ap.added {
		kp := ap.addedKPs[i]
		gs := &GroupSecrets{JoinerSecret: secrets.JoinerSecret, PSKs: ap.psks}
		if path != nil {
			if ps, ok := path.Secrets[commonAncestor(g.own.NodeIndex(), l.NodeIndex())]; ok {
				gs.PathSecret = &PathSecret{PathSecret: ps}
			}
		}
		ref, err := s.KeyPackageRef(kp)
		if err != nil {
			return nil, err
		}
		ct, err := s.EncryptGroupSecrets(kp.InitKey, encGI, gs, rand)
		if err != nil {
			return nil, err
		}
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{NewMember: ref, EncryptedGroupSecrets: ct})
	}
	return NewMLSMessage(w)
}

// committableProposals picks the cached proposals this member can commit
// together (RFC 9420, Section 12.2), in arrival order: its own Updates are
// left out (its path replaces them), as are Removes of itself, a second
// Update or Remove of one leaf, a second Add of one signature key, a
// repeated PSK and a second GroupContextExtensions; a ReInit is committed
// only alone.
func (g *Group) committableProposals() []*cachedProposal {
	var out []*cachedProposal
	touched := map[LeafIndex]bool{}
	seen := map[string]bool{}
	gce, reinit := false, false
	for i := range g.proposals {
		cp := &g.proposals[i]
		p := cp.proposal
		switch p.Type {
		case ProposalTypeUpdate:
			l := cp.sender.LeafIndex
			if cp.sender.Type != SenderTypeMember || l == g.own || touched[l] {
				continue
			}
			touched[l] = true
		case ProposalTypeRemove:
			l := p.Remove.Removed
			if l == g.own || touched[l] {
				continue
			}
			touched[l] = true
		case ProposalTypeAdd:
			k := "add" + string(p.Add.KeyPackage.LeafNode.SignatureKey)
			if seen[k] {
				continue
			}
			seen[k] = true
		case ProposalTypePSK:
			enc, err := marshal(p.PreSharedKey.PSK.marshal)
			if err != nil || seen["psk"+string(enc)] {
				continue
			}
			seen["psk"+string(enc)] = true
		case ProposalTypeGroupContextExtensions:
			if gce {
				continue
			}
			gce = true
		case ProposalTypeReInit:
			reinit = true
		}
		out = append(out, cp)
	}
	if reinit {
		// A ReInit must stand alone: commit the first one only.
		for _, cp := range out {
			if cp.proposal.Type == ProposalTypeReInit {
				return []*cachedProposal{cp}
			}
		}
	}
	return out
}
