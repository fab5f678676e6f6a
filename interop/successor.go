package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "grove/interop/proto"
	"grove/mls"
)

// --- Reinitialization (RFC 9420, Section 11.2) ---

// closeForReInit turns a state whose epoch was created by a ReInit commit
// into a reinit entry with a KeyPackage for the successor group.
func (s *server) closeForReInit(stateID uint32, st *groupState) (*pb.HandleReInitCommitResponse, error) {
	ri := st.group.ReInitProposal()
	if ri == nil {
		return nil, status.Error(codes.FailedPrecondition, "interop: the commit carried no ReInit proposal")
	}
	sig := st.sigKey
	if ri.CipherSuite != st.group.CipherSuite() {
		sig = nil // a new suite needs a new signature key
	}
	b, err := newKeyPackage(ri.CipherSuite, st.identity, sig)
	if err != nil {
		return nil, errMLS("reinit key package", err)
	}
	kp, err := encodeKeyPackage(&b.KeyPackage)
	if err != nil {
		return nil, errMLS("reinit key package", err)
	}
	delete(s.reg.states, stateID)
	id := s.reg.id()
	s.reg.reinits[id] = &reinitState{closed: st, bundle: b, identity: st.identity}
	return &pb.HandleReInitCommitResponse{ReinitId: id, KeyPackage: kp, EpochAuthenticator: st.group.EpochAuthenticator()}, nil
}

func (s *server) HandlePendingReInitCommit(_ context.Context, req *pb.HandlePendingCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.handlePending(req.StateId)
	if err != nil {
		return nil, err
	}
	return s.closeForReInit(req.StateId, st)
}

func (s *server) HandleReInitCommit(_ context.Context, req *pb.HandleCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.handleCommit(req)
	if err != nil {
		return nil, err
	}
	return s.closeForReInit(req.StateId, st)
}

func decodeKeyPackages(in [][]byte) ([]*mls.KeyPackage, error) {
	var out []*mls.KeyPackage
	for _, d := range in {
		kp, err := decodeKeyPackage(d)
		if err != nil {
			return nil, err
		}
		out = append(out, kp)
	}
	return out, nil
}

// subgroupResponse registers a successor group and answers for it. With
// externalTree the Welcome's GroupInfo lacks the ratchet_tree extension and
// the tree is returned for the joiners.
func (s *server) subgroupResponse(g *mls.Group, welcome []byte, externalTree, encrypt bool, identity []byte, sig *mls.SigningKey, psks mls.MapPSKStore) (*pb.CreateSubgroupResponse, error) {
	resp := &pb.CreateSubgroupResponse{Welcome: welcome, EpochAuthenticator: g.EpochAuthenticator()}
	if externalTree {
		var err error
		if resp.RatchetTree, err = g.Tree().MarshalBinary(); err != nil {
			return nil, errMLS("ratchet tree", err)
		}
	}
	resp.StateId = s.addState(g, encrypt, identity, sig, psks)
	return resp, nil
}

func (s *server) ReInitWelcome(_ context.Context, req *pb.ReInitWelcomeRequest) (*pb.CreateSubgroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reg.reinits[req.ReinitId]
	if !ok {
		return nil, errNotFound("reinit", req.ReinitId)
	}
	kps, err := decodeKeyPackages(req.KeyPackage)
	if err != nil {
		return nil, err
	}
	g, welcome, err := r.closed.group.ReInitGroup(&mls.SuccessorParams{
		Own: r.bundle, KeyPackages: kps, ForcePath: req.ForcePath, OmitRatchetTree: req.ExternalTree, Now: time.Now(), Rand: rand.Reader,
	})
	if err != nil {
		return nil, errMLS("reinit group", err)
	}
	delete(s.reg.reinits, req.ReinitId)
	r.closed.erase()
	return s.subgroupResponse(g, welcome, req.ExternalTree, r.closed.encrypt, r.identity, r.bundle.SigningKey, r.closed.psks)
}

func (s *server) HandleReInitWelcome(_ context.Context, req *pb.HandleReInitWelcomeRequest) (*pb.JoinGroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reg.reinits[req.ReinitId]
	if !ok {
		return nil, errNotFound("reinit", req.ReinitId)
	}
	g, err := mls.JoinFromWelcome(&mls.JoinParams{
		Welcome: req.Welcome, KeyPackage: r.bundle, RatchetTree: req.RatchetTree,
		PSKs: r.closed.psks, Resumption: r.closed.group, Now: time.Now(),
	})
	if err != nil {
		return nil, errMLS("join reinit welcome", err)
	}
	delete(s.reg.reinits, req.ReinitId)
	r.closed.erase()
	id := s.addState(g, r.closed.encrypt, r.identity, r.bundle.SigningKey, r.closed.psks)
	return &pb.JoinGroupResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

// --- Subgroup branching (RFC 9420, Section 11.3) ---

func (s *server) CreateBranch(_ context.Context, req *pb.CreateBranchRequest) (*pb.CreateSubgroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	kps, err := decodeKeyPackages(req.KeyPackages)
	if err != nil {
		return nil, err
	}
	own, err := newKeyPackage(st.group.CipherSuite(), st.identity, st.sigKey)
	if err != nil {
		return nil, errMLS("branch key package", err)
	}
	g, welcome, err := st.group.Branch(&mls.SuccessorParams{
		Own: own, KeyPackages: kps, GroupID: req.GroupId, Extensions: extensionsFrom(req.Extensions),
		ForcePath: req.ForcePath, OmitRatchetTree: req.ExternalTree, Now: time.Now(), Rand: rand.Reader,
	})
	if err != nil {
		return nil, errMLS("branch", err)
	}
	psks := mls.MapPSKStore{}
	for k, v := range st.psks {
		psks[k] = bytes.Clone(v)
	}
	return s.subgroupResponse(g, welcome, req.ExternalTree, st.encrypt, st.identity, st.sigKey, psks)
}

func (s *server) HandleBranch(_ context.Context, req *pb.HandleBranchRequest) (*pb.HandleBranchResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	tx, ok := s.reg.txs[req.TransactionId]
	if !ok {
		return nil, errNotFound("transaction", req.TransactionId)
	}
	g, err := mls.JoinFromWelcome(&mls.JoinParams{
		Welcome: req.Welcome, KeyPackage: tx.bundle, RatchetTree: req.RatchetTree,
		PSKs: st.psks, Resumption: st.group, Now: time.Now(),
	})
	if err != nil {
		return nil, errMLS("join branch", err)
	}
	delete(s.reg.txs, req.TransactionId)
	psks := mls.MapPSKStore{}
	for k, v := range st.psks {
		psks[k] = bytes.Clone(v)
	}
	id := s.addState(g, st.encrypt, tx.identity, tx.bundle.SigningKey, psks)
	return &pb.HandleBranchResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}
