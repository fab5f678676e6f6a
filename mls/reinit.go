package mls

import (
	"bytes"
	"fmt"
	"io"
	"time"
)

// ReInitProposal returns a ReInit proposal (RFC 9420, Section 12.1.5) for
// a new group with the given id, suite and extensions; commit it with
// Commit to close this group.
func ReInitProposal(groupID []byte, suite CipherSuite, exts Extensions) *Proposal {
	return &Proposal{Type: ProposalTypeReInit, ReInit: &ReInit{
		GroupID: bytes.Clone(groupID), Version: ProtocolVersionMLS10, CipherSuite: suite, Extensions: cloneExtensions(exts),
	}}
}

// SuccessorParams are the inputs of ReInitGroup and Branch.
type SuccessorParams struct {
	// Own is the creator's KeyPackage bundle in the new group's suite.
	Own *KeyPackageBundle
	// KeyPackages are the other members' KeyPackages for the new group.
	KeyPackages []*KeyPackage
	// GroupID is the new group's id (Branch only; ReInit takes it from the proposal).
	GroupID []byte
	Config  Config
	Now     time.Time
	Rand    io.Reader
}

// ReInitGroup creates the successor of a group closed by a ReInit commit
// (RFC 9420, Section 11.2): a new group with the ReInit's parameters whose
// first commit adds the given members and injects this epoch's resumption
// PSK with usage reinit. It returns the new group (epoch 1) and the
// Welcome; the members join with JoinParams.Resumption set to their own
// closed group.
func (g *Group) ReInitGroup(p *SuccessorParams) (*Group, []byte, error) {
	if g.reinit == nil {
		return nil, nil, fmt.Errorf("mls: no ReInit committed in this epoch: %w", ErrInvalidCommit)
	}
	return g.successor(p, g.reinit.GroupID, g.reinit.CipherSuite, g.reinit.Extensions, ResumptionPSKUsageReInit)
}

// Branch creates a new group with a subset of this group's members,
// linked to it by a resumption PSK of usage branch (RFC 9420, Section 11.3).
func (g *Group) Branch(p *SuccessorParams) (*Group, []byte, error) {
	return g.successor(p, p.GroupID, g.suite.ID(), g.ctx.Extensions, ResumptionPSKUsageBranch)
}

func (g *Group) successor(p *SuccessorParams, groupID []byte, suite CipherSuite, exts Extensions, usage ResumptionPSKUsage) (*Group, []byte, error) {
	if g.erased {
		return nil, nil, ErrErased
	}
	ng, err := CreateGroup(&CreateParams{Suite: suite, GroupID: groupID, Extensions: exts, Own: p.Own, Config: p.Config, Rand: p.Rand, Now: p.Now})
	if err != nil {
		return nil, nil, err
	}
	ng.cfg.PSKs = g.cfg.PSKs
	nonce := make([]byte, ng.suite.HashSize())
	if _, err := io.ReadFull(p.Rand, nonce); err != nil {
		return nil, nil, err
	}
	props := []*Proposal{{Type: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{
		PSKType: PSKTypeResumption, Usage: usage, PSKGroupID: bytes.Clone(g.ctx.GroupID), PSKEpoch: g.ctx.Epoch, PSKNonce: nonce,
	}}}}
	for _, kp := range p.KeyPackages {
		props = append(props, &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}})
	}
	sc, err := ng.Commit(&CommitOptions{Proposals: props, Now: p.Now, Rand: p.Rand, resumption: g, resumptionUsage: usage})
	if err != nil {
		return nil, nil, err
	}
	next, err := sc.Merge()
	if err != nil {
		return nil, nil, err
	}
	ng.Erase()
	return next, sc.Welcome, nil
}
