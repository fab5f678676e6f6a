package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "grove/interop/proto"
	"grove/mls"
)

// server implements MLSClient over the mls package. The harness drives a
// client with one call at a time, but gRPC may run calls concurrently, so
// one mutex serialises them (mls.Group is not safe for concurrent use).
// Embedding the generated Unimplemented type makes any RPC added to the
// service later fail with codes.Unimplemented and its name.
type server struct {
	pb.UnimplementedMLSClientServer

	mu  sync.Mutex
	reg *registry
}

func newServer() *server { return &server{reg: newRegistry()} }

// close erases every secret the server still holds.
func (s *server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, st := range s.reg.states {
		st.erase()
		delete(s.reg.states, id)
	}
	for id, tx := range s.reg.txs {
		tx.bundle.Erase()
		delete(s.reg.txs, id)
	}
	for id, r := range s.reg.reinits {
		r.closed.erase()
		r.bundle.Erase()
		delete(s.reg.reinits, id)
	}
	clear(s.reg.signers)
}

func (s *server) Name(context.Context, *pb.NameRequest) (*pb.NameResponse, error) {
	return &pb.NameResponse{Name: "grove"}, nil
}

func (s *server) SupportedCiphersuites(context.Context, *pb.SupportedCiphersuitesRequest) (*pb.SupportedCiphersuitesResponse, error) {
	var out []uint32
	for _, cs := range mls.CipherSuites() {
		out = append(out, uint32(cs))
	}
	return &pb.SupportedCiphersuitesResponse{Ciphersuites: out}, nil
}

func (s *server) state(id uint32) (*groupState, error) {
	st, ok := s.reg.states[id]
	if !ok {
		return nil, errNotFound("state", id)
	}
	return st, nil
}

// addState registers a new member state and returns its id.
func (s *server) addState(g *mls.Group, encrypt bool, identity []byte, sigKey *mls.SigningKey, psks mls.MapPSKStore) uint32 {
	if psks == nil {
		psks = mls.MapPSKStore{}
	}
	g.SetPSKStore(psks)
	id := s.reg.id()
	s.reg.states[id] = &groupState{group: g, encrypt: encrypt, identity: bytes.Clone(identity), sigKey: sigKey, psks: psks}
	return id
}

func suiteOf(cs uint32) (mls.CipherSuite, error) {
	if cs > 0xffff {
		return 0, status.Errorf(codes.InvalidArgument, "interop: cipher suite %d out of range", cs)
	}
	c := mls.CipherSuite(cs)
	if _, err := c.Suite(); err != nil {
		return 0, status.Errorf(codes.InvalidArgument, "interop: cipher suite %d: %v", cs, err)
	}
	return c, nil
}

// --- Ways to become a member of a group ---

func (s *server) CreateGroup(_ context.Context, req *pb.CreateGroupRequest) (*pb.CreateGroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, err := suiteOf(req.CipherSuite)
	if err != nil {
		return nil, err
	}
	own, err := newKeyPackage(cs, req.Identity, nil)
	if err != nil {
		return nil, errMLS("key package", err)
	}
	g, err := mls.CreateGroup(&mls.CreateParams{Suite: cs, GroupID: req.GroupId, Own: own, Rand: rand.Reader, Now: time.Now()})
	if err != nil {
		return nil, errMLS("create group", err)
	}
	return &pb.CreateGroupResponse{StateId: s.addState(g, req.EncryptHandshake, req.Identity, own.SigningKey, nil)}, nil
}

func (s *server) CreateKeyPackage(_ context.Context, req *pb.CreateKeyPackageRequest) (*pb.CreateKeyPackageResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, err := suiteOf(req.CipherSuite)
	if err != nil {
		return nil, err
	}
	b, err := newKeyPackage(cs, req.Identity, nil)
	if err != nil {
		return nil, errMLS("key package", err)
	}
	kp, err := encodeKeyPackage(&b.KeyPackage)
	if err != nil {
		return nil, errMLS("key package", err)
	}
	id := s.reg.id()
	s.reg.txs[id] = &transaction{bundle: b, identity: bytes.Clone(req.Identity), psks: mls.MapPSKStore{}}
	return &pb.CreateKeyPackageResponse{
		TransactionId:  id,
		KeyPackage:     kp,
		InitPriv:       bytes.Clone(b.InitKey.Bytes()),
		EncryptionPriv: bytes.Clone(b.EncryptionKey.Bytes()),
		SignaturePriv:  bytes.Clone(b.SigningKey.Bytes()),
	}, nil
}

func (s *server) JoinGroup(_ context.Context, req *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, ok := s.reg.txs[req.TransactionId]
	if !ok {
		return nil, errNotFound("transaction", req.TransactionId)
	}
	g, err := mls.JoinFromWelcome(&mls.JoinParams{
		Welcome: req.Welcome, KeyPackage: tx.bundle, RatchetTree: req.RatchetTree, PSKs: tx.psks, Now: time.Now(),
	})
	if err != nil {
		return nil, errMLS("join from welcome", err)
	}
	// The KeyPackage is spent (RFC 9420, Section 16.8: not reused).
	delete(s.reg.txs, req.TransactionId)
	id := s.addState(g, req.EncryptHandshake, tx.identity, tx.bundle.SigningKey, tx.psks)
	return &pb.JoinGroupResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

func (s *server) ExternalJoin(_ context.Context, req *pb.ExternalJoinRequest) (*pb.ExternalJoinResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	psks := mls.MapPSKStore{}
	var pskIDs [][]byte
	for _, p := range req.Psks {
		if len(p.PskId) == 0 || len(p.PskSecret) == 0 {
			return nil, status.Error(codes.InvalidArgument, "interop: empty psk_id or psk_secret")
		}
		psks[string(p.PskId)] = bytes.Clone(p.PskSecret)
		pskIDs = append(pskIDs, bytes.Clone(p.PskId))
	}
	gi, err := decodeGroupInfo(req.GroupInfo)
	if err != nil {
		return nil, err
	}
	cs := gi.GroupContext.CipherSuite
	suite, err := cs.Suite()
	if err != nil {
		return nil, errMLS("group info", err)
	}
	sig, err := suite.GenerateSigningKey(rand.Reader)
	if err != nil {
		return nil, errMLS("signing key", err)
	}
	g, commit, err := mls.JoinExternal(&mls.ExternalJoinParams{
		GroupInfo:    req.GroupInfo,
		RatchetTree:  req.RatchetTree,
		Credential:   mls.NewBasicCredential(req.Identity),
		Capabilities: mls.Capabilities{CipherSuites: mls.CipherSuites()},
		SigningKey:   sig,
		Resync:       req.RemovePrior,
		PSKs:         pskIDs,
		Config:       mls.Config{PSKs: psks},
		Now:          time.Now(),
		Rand:         rand.Reader,
	})
	if err != nil {
		return nil, errMLS("external join", err)
	}
	id := s.addState(g, req.EncryptHandshake, req.Identity, sig, psks)
	return &pb.ExternalJoinResponse{StateId: id, Commit: commit, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

func decodeGroupInfo(data []byte) (*mls.GroupInfo, error) {
	m, err := mls.UnmarshalMLSMessage(data)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "interop: group info: %v", err)
	}
	if m.WireFormat != mls.WireFormatGroupInfo || m.GroupInfo == nil {
		return nil, status.Errorf(codes.InvalidArgument, "interop: MLSMessage of wire format %d is no GroupInfo", m.WireFormat)
	}
	return m.GroupInfo, nil
}

// --- Operations using a group state ---

func (s *server) GroupInfo(_ context.Context, req *pb.GroupInfoRequest) (*pb.GroupInfoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	gi, err := st.group.GroupInfo(!req.ExternalTree)
	if err != nil {
		return nil, errMLS("group info", err)
	}
	resp := &pb.GroupInfoResponse{GroupInfo: gi}
	if req.ExternalTree {
		if resp.RatchetTree, err = st.group.Tree().MarshalBinary(); err != nil {
			return nil, errMLS("ratchet tree", err)
		}
	}
	return resp, nil
}

func (s *server) StateAuth(_ context.Context, req *pb.StateAuthRequest) (*pb.StateAuthResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	return &pb.StateAuthResponse{StateAuthSecret: st.group.EpochAuthenticator()}, nil
}

// maxExportLength bounds Export's key_length (the HKDF limit is 255*Nh;
// this is far below it and far above any real use).
const maxExportLength = 1 << 12

func (s *server) Export(_ context.Context, req *pb.ExportRequest) (*pb.ExportResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	if req.KeyLength > maxExportLength {
		return nil, status.Errorf(codes.InvalidArgument, "interop: export of %d bytes", req.KeyLength)
	}
	out, err := st.group.Export(req.Label, req.Context, int(req.KeyLength))
	if err != nil {
		return nil, errMLS("export", err)
	}
	return &pb.ExportResponse{ExportedSecret: out}, nil
}

func (s *server) Protect(_ context.Context, req *pb.ProtectRequest) (*pb.ProtectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	ct, err := st.group.ProtectApplication(req.Plaintext, req.AuthenticatedData, rand.Reader)
	if err != nil {
		return nil, errMLS("protect", err)
	}
	return &pb.ProtectResponse{Ciphertext: ct}, nil
}

func (s *server) Unprotect(_ context.Context, req *pb.UnprotectRequest) (*pb.UnprotectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	pm, err := st.group.ProcessMessage(req.Ciphertext, mls.ProcessOptions{Now: time.Now()})
	if err != nil {
		return nil, errMLS("unprotect", err)
	}
	if pm.Kind != mls.KindApplication {
		return nil, status.Errorf(codes.InvalidArgument, "interop: unprotect: message of kind %d is no application message", pm.Kind)
	}
	return &pb.UnprotectResponse{AuthenticatedData: pm.AuthenticatedData, Plaintext: pm.ApplicationData}, nil
}

func (s *server) StorePSK(_ context.Context, req *pb.StorePSKRequest) (*pb.StorePSKResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := req.StateOrTransactionId
	var store mls.MapPSKStore
	switch {
	case s.reg.states[id] != nil:
		store = s.reg.states[id].psks
	case s.reg.txs[id] != nil:
		store = s.reg.txs[id].psks
	case s.reg.reinits[id] != nil:
		store = s.reg.reinits[id].closed.psks
	default:
		return nil, errNotFound("state or transaction", id)
	}
	if len(req.PskId) == 0 || len(req.PskSecret) == 0 {
		return nil, status.Error(codes.InvalidArgument, "interop: empty psk_id or psk_secret")
	}
	store[string(req.PskId)] = bytes.Clone(req.PskSecret)
	return &pb.StorePSKResponse{}, nil
}

// --- Proposals ---

func (s *server) propose(stateID uint32, p *mls.Proposal) (*pb.ProposalResponse, error) {
	st, err := s.state(stateID)
	if err != nil {
		return nil, err
	}
	msg, _, err := st.group.Propose(p, st.encrypt, rand.Reader)
	if err != nil {
		return nil, errMLS("propose", err)
	}
	return &pb.ProposalResponse{Proposal: msg}, nil
}

// proposalFrom builds a proposal from its harness description for a group
// with the given id and suite; leafOf resolves a member's identity.
func proposalFrom(d *pb.ProposalDescription, groupID []byte, cs mls.CipherSuite, leafOf func([]byte) (mls.LeafIndex, error)) (*mls.Proposal, error) {
	switch string(d.ProposalType) {
	case "add":
		kp, err := decodeKeyPackage(d.KeyPackage)
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *kp}}, nil
	case "remove":
		l, err := leafOf(d.RemovedId)
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: l}}, nil
	case "externalPSK":
		return pskProposal(cs, mls.PreSharedKeyID{PSKType: mls.PSKTypeExternal, PSKID: bytes.Clone(d.PskId)})
	case "resumptionPSK":
		return pskProposal(cs, mls.PreSharedKeyID{
			PSKType: mls.PSKTypeResumption, Usage: mls.ResumptionPSKUsageApplication, PSKGroupID: bytes.Clone(groupID), PSKEpoch: d.EpochId,
		})
	case "groupContextExtensions":
		return &mls.Proposal{Type: mls.ProposalTypeGroupContextExtensions, GroupContextExtensions: &mls.GroupContextExtensions{
			Extensions: extensionsFrom(d.Extensions),
		}}, nil
	case "reinit":
		rcs, err := suiteOf(d.CipherSuite)
		if err != nil {
			return nil, err
		}
		return mls.ReInitProposal(d.GroupId, rcs, extensionsFrom(d.Extensions)), nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "interop: unknown proposal type %q", d.ProposalType)
}

// pskProposal completes id with a fresh nonce (RFC 9420, Section 8.4).
func pskProposal(cs mls.CipherSuite, id mls.PreSharedKeyID) (*mls.Proposal, error) {
	suite, err := cs.Suite()
	if err != nil {
		return nil, errMLS("psk", err)
	}
	id.PSKNonce = make([]byte, suite.HashSize())
	if _, err := rand.Read(id.PSKNonce); err != nil {
		return nil, fmt.Errorf("interop: psk nonce: %w", err)
	}
	return &mls.Proposal{Type: mls.ProposalTypePSK, PreSharedKey: &mls.PreSharedKey{PSK: id}}, nil
}

func extensionsFrom(in []*pb.Extension) mls.Extensions {
	out := mls.Extensions{}
	for _, e := range in {
		out = append(out, mls.Extension{Type: mls.ExtensionType(e.ExtensionType), Data: bytes.Clone(e.ExtensionData)})
	}
	return out
}

// memberLeaf finds the leaf of the member whose basic credential is identity.
func memberLeaf(g *mls.Group) func([]byte) (mls.LeafIndex, error) {
	return func(identity []byte) (mls.LeafIndex, error) {
		for _, m := range g.Members() {
			if m.Identity != nil && bytes.Equal(m.Identity, identity) {
				return m.Leaf, nil
			}
		}
		return 0, status.Errorf(codes.InvalidArgument, "interop: no member with identity %q", identity)
	}
}

func (s *server) AddProposal(_ context.Context, req *pb.AddProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kp, err := decodeKeyPackage(req.KeyPackage)
	if err != nil {
		return nil, err
	}
	return s.propose(req.StateId, &mls.Proposal{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *kp}})
}

func (s *server) UpdateProposal(_ context.Context, req *pb.UpdateProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	msg, _, err := st.group.ProposeUpdate(st.encrypt, rand.Reader)
	if err != nil {
		return nil, errMLS("update proposal", err)
	}
	return &pb.ProposalResponse{Proposal: msg}, nil
}

func (s *server) RemoveProposal(_ context.Context, req *pb.RemoveProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	l, err := memberLeaf(st.group)(req.RemovedId)
	if err != nil {
		return nil, err
	}
	return s.propose(req.StateId, &mls.Proposal{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: l}})
}

func (s *server) ExternalPSKProposal(_ context.Context, req *pb.ExternalPSKProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	p, err := pskProposal(st.group.CipherSuite(), mls.PreSharedKeyID{PSKType: mls.PSKTypeExternal, PSKID: bytes.Clone(req.PskId)})
	if err != nil {
		return nil, err
	}
	return s.propose(req.StateId, p)
}

func (s *server) ResumptionPSKProposal(_ context.Context, req *pb.ResumptionPSKProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	p, err := pskProposal(st.group.CipherSuite(), mls.PreSharedKeyID{
		PSKType: mls.PSKTypeResumption, Usage: mls.ResumptionPSKUsageApplication,
		PSKGroupID: bytes.Clone(st.group.GroupID()), PSKEpoch: req.EpochId,
	})
	if err != nil {
		return nil, err
	}
	return s.propose(req.StateId, p)
}

func (s *server) GroupContextExtensionsProposal(_ context.Context, req *pb.GroupContextExtensionsProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.propose(req.StateId, &mls.Proposal{Type: mls.ProposalTypeGroupContextExtensions, GroupContextExtensions: &mls.GroupContextExtensions{
		Extensions: extensionsFrom(req.Extensions),
	}})
}

func (s *server) ReInitProposal(_ context.Context, req *pb.ReInitProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, err := suiteOf(req.CipherSuite)
	if err != nil {
		return nil, err
	}
	return s.propose(req.StateId, mls.ReInitProposal(req.GroupId, cs, extensionsFrom(req.Extensions)))
}

// --- Commits ---

// receiveProposals caches proposals sent by other members; the member's
// own proposals are already cached (the harness passes them too).
func receiveProposals(g *mls.Group, msgs [][]byte) error {
	for i, m := range msgs {
		pm, err := g.ProcessMessage(m, mls.ProcessOptions{Now: time.Now()})
		if errors.Is(err, mls.ErrOwnMessage) {
			continue
		}
		if err != nil {
			return errMLS(fmt.Sprintf("proposal %d", i), err)
		}
		if pm.Kind != mls.KindProposal {
			return status.Errorf(codes.InvalidArgument, "interop: proposal %d is a message of kind %d", i, pm.Kind)
		}
	}
	return nil
}

func (s *server) Commit(_ context.Context, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(req)
}

func (s *server) ReInitCommit(_ context.Context, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(req)
}

func (s *server) commit(req *pb.CommitRequest) (*pb.CommitResponse, error) {
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	if err := receiveProposals(st.group, req.ByReference); err != nil {
		return nil, err
	}
	var props []*mls.Proposal
	for _, d := range req.ByValue {
		p, err := proposalFrom(d, st.group.GroupID(), st.group.CipherSuite(), memberLeaf(st.group))
		if err != nil {
			return nil, err
		}
		props = append(props, p)
	}
	sc, err := st.group.Commit(&mls.CommitOptions{
		Proposals:       props,
		ForcePath:       req.ForcePath,
		Private:         st.encrypt,
		OmitRatchetTree: req.ExternalTree,
		Now:             time.Now(),
		Rand:            rand.Reader,
	})
	if err != nil {
		return nil, errMLS("commit", err)
	}
	resp := &pb.CommitResponse{Commit: sc.Message, Welcome: sc.Welcome}
	if req.ExternalTree {
		if resp.RatchetTree, err = sc.NextRatchetTree(); err != nil {
			sc.Discard()
			return nil, errMLS("ratchet tree", err)
		}
	}
	if st.pending != nil {
		st.pending.Discard()
	}
	st.pending = sc
	return resp, nil
}

// handleCommit processes proposals and a commit of another member and
// moves the state to the new epoch.
func (s *server) handleCommit(req *pb.HandleCommitRequest) (*groupState, error) {
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	if err := receiveProposals(st.group, req.Proposal); err != nil {
		return nil, err
	}
	pm, err := st.group.ProcessMessage(req.Commit, mls.ProcessOptions{Now: time.Now()})
	if errors.Is(err, mls.ErrOwnCommit) {
		return nil, status.Error(codes.FailedPrecondition, "interop: own commit: use HandlePendingCommit")
	}
	if err != nil {
		return nil, errMLS("handle commit", err)
	}
	if pm.Kind != mls.KindCommit {
		return nil, status.Errorf(codes.InvalidArgument, "interop: message of kind %d is no commit", pm.Kind)
	}
	next, err := pm.Commit.Merge()
	if err != nil {
		return nil, errMLS("merge commit", err)
	}
	if st.pending != nil {
		st.pending.Discard()
		st.pending = nil
	}
	st.advance(next)
	return st, nil
}

func (s *server) handlePending(id uint32) (*groupState, error) {
	st, err := s.state(id)
	if err != nil {
		return nil, err
	}
	if st.pending == nil {
		return nil, status.Error(codes.FailedPrecondition, "interop: no pending commit")
	}
	next, err := st.pending.Merge()
	st.pending = nil
	if err != nil {
		return nil, errMLS("merge own commit", err)
	}
	st.advance(next)
	return st, nil
}

func (s *server) HandleCommit(_ context.Context, req *pb.HandleCommitRequest) (*pb.HandleCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.handleCommit(req)
	if err != nil {
		return nil, err
	}
	return &pb.HandleCommitResponse{StateId: req.StateId, EpochAuthenticator: st.group.EpochAuthenticator()}, nil
}

func (s *server) HandlePendingCommit(_ context.Context, req *pb.HandlePendingCommitRequest) (*pb.HandleCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.handlePending(req.StateId)
	if err != nil {
		return nil, err
	}
	return &pb.HandleCommitResponse{StateId: req.StateId, EpochAuthenticator: st.group.EpochAuthenticator()}, nil
}

func (s *server) Free(_ context.Context, req *pb.FreeRequest) (*pb.FreeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := req.StateId
	switch {
	case s.reg.states[id] != nil:
		s.reg.states[id].erase()
		delete(s.reg.states, id)
	case s.reg.txs[id] != nil:
		s.reg.txs[id].bundle.Erase()
		delete(s.reg.txs, id)
	case s.reg.reinits[id] != nil:
		s.reg.reinits[id].closed.erase()
		s.reg.reinits[id].bundle.Erase()
		delete(s.reg.reinits, id)
	case s.reg.signers[id] != nil:
		delete(s.reg.signers, id)
	default:
		return nil, errNotFound("state", id)
	}
	return &pb.FreeResponse{}, nil
}
