package mls

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"time"
)

// resolvedProposal is one proposal of a commit with its sender and, for
// proposals included by reference, its ProposalRef.
type resolvedProposal struct {
	proposal *Proposal
	sender   Sender
	ref      []byte
	// leafKey is this member's private key for its own Update, when the
	// proposal came from the cache.
	leafKey *HPKEPrivateKey
}

// resolveProposals turns a commit's ProposalOrRef list into proposals,
// looking references up in the epoch's cache (RFC 9420, Section 12.4).
// Inline proposals are sent by the committer.
func (g *Group) resolveProposals(list []ProposalOrRef, committer Sender) ([]resolvedProposal, error) {
	out := make([]resolvedProposal, 0, len(list))
	for i, por := range list {
		switch por.Type {
		case ProposalOrRefProposal:
			if por.Proposal == nil {
				return nil, &ProposalError{Index: i, Reason: "empty proposal"}
			}
			out = append(out, resolvedProposal{proposal: por.Proposal, sender: committer})
		case ProposalOrRefReference:
			cp := g.findProposal(por.Reference)
			if cp == nil {
				return nil, &ProposalError{Index: i, Reason: fmt.Sprintf("reference %x", por.Reference), Cause: ErrUnknownProposal}
			}
			out = append(out, resolvedProposal{proposal: cp.proposal, sender: cp.sender, ref: cp.ref, leafKey: cp.leafKey})
		default:
			return nil, &ProposalError{Index: i, Reason: fmt.Sprintf("ProposalOrRef type %d", por.Type)}
		}
	}
	return out, nil
}

func (g *Group) findProposal(ref []byte) *cachedProposal {
	for i := range g.proposals {
		if bytes.Equal(g.proposals[i].ref, ref) {
			return &g.proposals[i]
		}
	}
	return nil
}

// appliedProposals is the outcome of applying a proposal list to a fork of
// the tree (RFC 9420, Section 12.3).
type appliedProposals struct {
	extensions   Extensions // the next epoch's GroupContext extensions
	added        []LeafIndex
	addedKPs     []*KeyPackage
	psks         []PreSharedKeyID
	reinit       *ReInit
	externalInit *ExternalInit
	pathRequired bool
	selfRemoved  bool
	// ownUpdateKey is this member's new leaf key when its own Update was committed.
	ownUpdateKey *HPKEPrivateKey
}

// validateAndApply checks a commit's proposal list (RFC 9420, Section 12.2,
// and 12.4.3.2 for external commits) and applies it to tree, a fork of the
// epoch's tree, in the order of Section 12.3: GroupContextExtensions,
// Update, Remove, Add; PSKs are collected for the key schedule.
func (g *Group) validateAndApply(tree *RatchetTree, list []resolvedProposal, committer Sender, now time.Time, ignoreLifetime bool, resumptionUsage ResumptionPSKUsage) (*appliedProposals, error) {
	s := g.suite
	ap := &appliedProposals{extensions: g.ctx.Extensions}
	external := committer.Type == SenderTypeNewMemberCommit
	var (
		gce               *GroupContextExtensions
		updates           []int
		removes           []int
		adds              []int
		touched           = make(map[LeafIndex]bool)
		pskIDs            [][]byte
		removeCount       int
		externalInitCount int
		reinitCount       int
		otherThanReInit   int
	)
	for i := range list {
		rp := &list[i]
		p := rp.proposal
		if p.body() == nil {
			return nil, &ProposalError{Index: i, Reason: "proposal without body"}
		}
		if external && rp.ref != nil {
			return nil, &ProposalError{Index: i, Reason: "external commit with a proposal by reference"}
		}
		if p.Type != ProposalTypeReInit {
			otherThanReInit++
		}
		switch p.Type {
		case ProposalTypeAdd:
			if external {
				return nil, &ProposalError{Index: i, Reason: "Add in an external commit"}
			}
			adds = append(adds, i)
		case ProposalTypeUpdate:
			if external {
				return nil, &ProposalError{Index: i, Reason: "Update in an external commit"}
			}
			if rp.sender.Type != SenderTypeMember {
				return nil, &ProposalError{Index: i, Reason: "Update from a non-member"}
			}
			if committer.Type == SenderTypeMember && rp.sender.LeafIndex == committer.LeafIndex {
				return nil, &ProposalError{Index: i, Reason: "committer's own Update"}
			}
			if touched[rp.sender.LeafIndex] {
				return nil, &ProposalError{Index: i, Reason: fmt.Sprintf("second Update or Remove for leaf %d", rp.sender.LeafIndex)}
			}
			touched[rp.sender.LeafIndex] = true
			updates = append(updates, i)
			ap.pathRequired = true
		case ProposalTypeRemove:
			r := p.Remove.Removed
			if tree.LeafNode(r) == nil {
				return nil, &ProposalError{Index: i, Reason: fmt.Sprintf("Remove of blank leaf %d", r), Cause: ErrUnknownMember}
			}
			if committer.Type == SenderTypeMember && r == committer.LeafIndex {
				return nil, &ProposalError{Index: i, Reason: "committer removes itself"}
			}
			if touched[r] {
				return nil, &ProposalError{Index: i, Reason: fmt.Sprintf("second Update or Remove for leaf %d", r)}
			}
			touched[r] = true
			removes = append(removes, i)
			removeCount++
			ap.pathRequired = true
		case ProposalTypePSK:
			id := &p.PreSharedKey.PSK
			enc, err := marshal(id.marshal)
			if err != nil {
				return nil, &ProposalError{Index: i, Reason: "PSK id", Cause: err}
			}
			if slices.ContainsFunc(pskIDs, func(e []byte) bool { return bytes.Equal(e, enc) }) {
				return nil, &ProposalError{Index: i, Reason: "PSK proposed twice"}
			}
			pskIDs = append(pskIDs, enc)
			// Section 12.2: reinit and branch PSKs only in the first
			// commit of the successor group.
			if id.PSKType == PSKTypeResumption && id.Usage != ResumptionPSKUsageApplication &&
				!(id.Usage == resumptionUsage && g.ctx.Epoch == 0) {
				return nil, &ProposalError{Index: i, Reason: fmt.Sprintf("resumption PSK of usage %d in a commit", id.Usage)}
			}
			if len(id.PSKNonce) != s.HashSize() {
				return nil, &ProposalError{Index: i, Reason: fmt.Sprintf("PSK nonce of %d bytes", len(id.PSKNonce))}
			}
			ap.psks = append(ap.psks, *id)
		case ProposalTypeReInit:
			if external {
				return nil, &ProposalError{Index: i, Reason: "ReInit in an external commit"}
			}
			reinitCount++
			if p.ReInit.Version < g.ctx.Version {
				return nil, &ProposalError{Index: i, Reason: "ReInit to an older version"}
			}
			ap.reinit = p.ReInit
		case ProposalTypeExternalInit:
			if !external {
				return nil, &ProposalError{Index: i, Reason: "ExternalInit in a member commit"}
			}
			externalInitCount++
			ap.externalInit = p.ExternalInit
			ap.pathRequired = true
		case ProposalTypeGroupContextExtensions:
			if external {
				return nil, &ProposalError{Index: i, Reason: "GroupContextExtensions in an external commit"}
			}
			if gce != nil {
				return nil, &ProposalError{Index: i, Reason: "second GroupContextExtensions"}
			}
			gce = p.GroupContextExtensions
			ap.pathRequired = true
		default:
			return nil, &ProposalError{Index: i, Reason: fmt.Sprintf("proposal type %d", p.Type)}
		}
	}
	if reinitCount > 0 && (reinitCount > 1 || otherThanReInit > 0) {
		return nil, &ProposalError{Index: -1, Reason: "ReInit with other proposals"}
	}
	if external {
		if externalInitCount != 1 {
			return nil, &ProposalError{Index: -1, Reason: fmt.Sprintf("%d ExternalInit proposals in an external commit", externalInitCount)}
		}
		if removeCount > 1 {
			return nil, &ProposalError{Index: -1, Reason: "external commit removes more than one leaf"}
		}
	}
	if len(list) == 0 {
		ap.pathRequired = true
	}

	v, err := g.leafValidation(now, ignoreLifetime)
	if err != nil {
		return nil, &ProposalError{Index: -1, Reason: "required_capabilities", Cause: err}
	}
	// 1. GroupContextExtensions: every member must support them.
	if gce != nil {
		if err := gce.Extensions.checkUnique(); err != nil {
			return nil, &ProposalError{Index: -1, Reason: "GroupContextExtensions", Cause: err}
		}
		for l := LeafIndex(0); uint32(l) < tree.LeafCount(); l++ {
			ln := tree.LeafNode(l)
			if ln == nil || touched[l] && !slices.ContainsFunc(updates, func(i int) bool { return list[i].sender.LeafIndex == l }) {
				continue
			}
			if err := checkExtensionsSupported(ln, gce.Extensions); err != nil {
				return nil, &ProposalError{Index: -1, Reason: fmt.Sprintf("GroupContextExtensions, leaf %d", l), Cause: err}
			}
		}
		ap.extensions = cloneExtensions(gce.Extensions)
		if v.RequiredCapabilities, err = requiredCapabilities(ap.extensions); err != nil {
			return nil, &ProposalError{Index: -1, Reason: "required_capabilities", Cause: err}
		}
	}
	// 2. Updates.
	for _, i := range updates {
		rp := &list[i]
		l := rp.sender.LeafIndex
		ln := &rp.proposal.Update.LeafNode
		if err := tree.ValidateLeafNode(ln, l, LeafNodeSourceUpdate, v); err != nil {
			return nil, &ProposalError{Index: i, Reason: "Update leaf node", Cause: err}
		}
		if old := tree.LeafNode(l); old != nil && bytes.Equal(old.EncryptionKey, ln.EncryptionKey) {
			return nil, &ProposalError{Index: i, Reason: "Update keeps the encryption key"}
		}
		if old := tree.LeafNode(l); old != nil {
			if err := g.cfg.checkCredentialChange(l, &old.Credential, &ln.Credential); err != nil {
				return nil, &ProposalError{Index: i, Reason: "Update", Cause: err}
			}
		}
		if err := tree.UpdateLeaf(l, ln.Clone()); err != nil {
			return nil, &ProposalError{Index: i, Reason: "Update", Cause: err}
		}
		if l == g.own && committer.Type == SenderTypeMember && committer.LeafIndex != g.own {
			if rp.leafKey == nil || !bytes.Equal(rp.leafKey.PublicKey(), ln.EncryptionKey) {
				return nil, &ProposalError{Index: i, Reason: "own Update without its private key"}
			}
			ap.ownUpdateKey = rp.leafKey
		}
	}
	// 3. Removes.
	for _, i := range removes {
		r := list[i].proposal.Remove.Removed
		if r == g.own {
			ap.selfRemoved = true
		}
		if err := tree.RemoveLeaf(r); err != nil {
			return nil, &ProposalError{Index: i, Reason: "Remove", Cause: err}
		}
	}
	// 4. Adds.
	for _, i := range adds {
		kp := &list[i].proposal.Add.KeyPackage
		// The leaf node itself is checked by ValidateLeafNode below.
		if err := validateKeyPackage(s, g.ctx.Version, kp, v, false); err != nil {
			return nil, &ProposalError{Index: i, Reason: "Add", Cause: err}
		}
		if tree.HasEncryptionKey(kp.InitKey) {
			return nil, &ProposalError{Index: i, Reason: "Add: init key already in the tree"}
		}
		if err := checkExtensionsSupported(&kp.LeafNode, ap.extensions); err != nil {
			return nil, &ProposalError{Index: i, Reason: "Add: group extensions not supported", Cause: err}
		}
		// A new leaf's position does not enter its validation (key_package
		// leaves are signed without one), so it is checked as an outsider
		// before AddLeaf finds its place.
		if err := tree.ValidateLeafNode(&kp.LeafNode, newLeafSentinel, LeafNodeSourceKeyPackage, v); err != nil {
			return nil, &ProposalError{Index: i, Reason: "Add", Cause: fmt.Errorf("%w: leaf node: %w", ErrInvalidKeyPackage, err)}
		}
		ap.added = append(ap.added, tree.AddLeaf(kp.LeafNode.Clone()))
		ap.addedKPs = append(ap.addedKPs, kp)
	}
	return ap, nil
}

// newLeafSentinel is a leaf index no tree holds.
const newLeafSentinel = LeafIndex(math.MaxUint32 >> 1)

// resolvePSKs looks up the secret of every PSK of a commit or Welcome:
// external ones in the PSK store, resumption ones among the retained
// epochs of this group (RFC 9420, Section 8.4).
func (g *Group) resolvePSKs(ids []PreSharedKeyID) ([]PSKWithSecret, error) {
	return resolvePSKs(ids, g.cfg.PSKs, g)
}

func resolvePSKs(ids []PreSharedKeyID, store PSKStore, resumption *Group) ([]PSKWithSecret, error) {
	out := make([]PSKWithSecret, len(ids))
	for i, id := range ids {
		out[i].ID = id
		switch id.PSKType {
		case PSKTypeExternal:
			var psk []byte
			if store != nil {
				psk = store.PSK(id.PSKID)
			}
			if psk == nil {
				return nil, fmt.Errorf("mls: external PSK %x: %w", id.PSKID, ErrUnknownPSK)
			}
			out[i].PSK = psk
		case PSKTypeResumption:
			var psk []byte
			if resumption != nil && bytes.Equal(id.PSKGroupID, resumption.ctx.GroupID) {
				for _, r := range resumption.resumption {
					if r.epoch == id.PSKEpoch {
						psk = r.psk
					}
				}
			}
			if psk == nil {
				return nil, fmt.Errorf("mls: resumption PSK of group %x epoch %d: %w", id.PSKGroupID, id.PSKEpoch, ErrUnknownPSK)
			}
			out[i].PSK = psk
		default:
			return nil, fmt.Errorf("mls: PSK type %d: %w", id.PSKType, ErrUnknownPSK)
		}
	}
	return out, nil
}
