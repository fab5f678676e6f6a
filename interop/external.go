package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "grove/interop/proto"
	"grove/mls"
)

// --- External proposals (RFC 9420, Sections 12.1.8 and 12.1.8.1) ---

// externalProposal signs a proposal from a non-member sender against the
// group's context and frames it as a PublicMessage (external senders have
// no membership key, so it carries no membership tag).
func externalProposal(gc *mls.GroupContext, sender mls.Sender, p *mls.Proposal, key *mls.SigningKey) ([]byte, error) {
	ac := &mls.AuthenticatedContent{
		WireFormat: mls.WireFormatPublicMessage,
		Content: mls.FramedContent{
			GroupID: bytes.Clone(gc.GroupID), Epoch: gc.Epoch, Sender: sender,
			ContentType: mls.ContentTypeProposal, Proposal: p,
		},
	}
	if err := ac.Sign(key, gc); err != nil {
		return nil, errMLS("sign external proposal", err)
	}
	m, err := mls.NewMLSMessage(&mls.PublicMessage{Content: ac.Content, Auth: ac.Auth})
	if err != nil {
		return nil, errMLS("external proposal", err)
	}
	return m.MarshalBinary()
}

func (s *server) NewMemberAddProposal(_ context.Context, req *pb.NewMemberAddProposalRequest) (*pb.NewMemberAddProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gi, err := decodeGroupInfo(req.GroupInfo)
	if err != nil {
		return nil, err
	}
	b, err := newKeyPackage(gi.GroupContext.CipherSuite, req.Identity, nil)
	if err != nil {
		return nil, errMLS("key package", err)
	}
	msg, err := externalProposal(&gi.GroupContext, mls.Sender{Type: mls.SenderTypeNewMemberProposal},
		&mls.Proposal{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: b.KeyPackage}}, b.SigningKey)
	if err != nil {
		return nil, err
	}
	id := s.reg.id()
	s.reg.txs[id] = &transaction{bundle: b, identity: bytes.Clone(req.Identity), psks: mls.MapPSKStore{}}
	return &pb.NewMemberAddProposalResponse{
		TransactionId:  id,
		Proposal:       msg,
		InitPriv:       bytes.Clone(b.InitKey.Bytes()),
		EncryptionPriv: bytes.Clone(b.EncryptionKey.Bytes()),
		SignaturePriv:  bytes.Clone(b.SigningKey.Bytes()),
	}, nil
}

func (s *server) CreateExternalSigner(_ context.Context, req *pb.CreateExternalSignerRequest) (*pb.CreateExternalSignerResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, err := suiteOf(req.CipherSuite)
	if err != nil {
		return nil, err
	}
	suite, _ := cs.Suite()
	key, err := suite.GenerateSigningKey(rand.Reader)
	if err != nil {
		return nil, errMLS("signing key", err)
	}
	// The ExternalSender struct alone: the extension's encoding of a
	// one-element vector without its length prefix.
	ext, err := mls.ExternalSendersExtension([]mls.ExternalSender{{SignatureKey: key.PublicKey(), Credential: mls.NewBasicCredential(req.Identity)}})
	if err != nil {
		return nil, errMLS("external sender", err)
	}
	_, n, err := mls.DecodeVarint(ext.Data)
	if err != nil {
		return nil, errMLS("external sender", err)
	}
	id := s.reg.id()
	s.reg.signers[id] = &externalSigner{suite: cs, sigKey: key, identity: bytes.Clone(req.Identity)}
	return &pb.CreateExternalSignerResponse{SignerId: id, ExternalSender: bytes.Clone(ext.Data[n:])}, nil
}

// appendVector appends elem to the body of an MLS variable-length vector
// (RFC 9420, Section 2.1.2), keeping its elements.
func appendVector(vector, elem []byte) ([]byte, error) {
	var body []byte
	if len(vector) > 0 {
		l, n, err := mls.DecodeVarint(vector)
		if err != nil {
			return nil, err
		}
		if int(l) != len(vector)-n {
			return nil, fmt.Errorf("vector length %d of %d bytes", l, len(vector)-n)
		}
		body = vector[n:]
	}
	total := len(body) + len(elem)
	var out []byte
	switch {
	case total < 1<<6:
		out = []byte{byte(total)}
	case total < 1<<14:
		out = []byte{0x40 | byte(total>>8), byte(total)}
	case total < 1<<30:
		out = []byte{0x80 | byte(total>>24), byte(total >> 16), byte(total >> 8), byte(total)}
	default:
		return nil, fmt.Errorf("vector of %d bytes", total)
	}
	out = append(out, body...)
	return append(out, elem...), nil
}

func (s *server) AddExternalSigner(_ context.Context, req *pb.AddExternalSignerRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	exts := st.group.GroupContext().Extensions
	found := false
	for i := range exts {
		if exts[i].Type == mls.ExtensionExternalSenders {
			if exts[i].Data, err = appendVector(exts[i].Data, req.ExternalSender); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "interop: external_senders: %v", err)
			}
			found = true
		}
	}
	if !found {
		data, err := appendVector(nil, req.ExternalSender)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "interop: external_senders: %v", err)
		}
		exts = append(exts, mls.Extension{Type: mls.ExtensionExternalSenders, Data: data})
	}
	// The proposal is validated (external_senders decoded) by every member
	// that processes or commits it.
	return s.propose(req.StateId, &mls.Proposal{Type: mls.ProposalTypeGroupContextExtensions,
		GroupContextExtensions: &mls.GroupContextExtensions{Extensions: exts}})
}

func (s *server) ExternalSignerProposal(_ context.Context, req *pb.ExternalSignerProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	signer, ok := s.reg.signers[req.SignerId]
	if !ok {
		return nil, errNotFound("external signer", req.SignerId)
	}
	if req.Description == nil {
		return nil, status.Error(codes.InvalidArgument, "interop: no proposal description")
	}
	gi, err := decodeGroupInfo(req.GroupInfo)
	if err != nil {
		return nil, err
	}
	gc := &gi.GroupContext
	if gc.CipherSuite != signer.suite {
		return nil, status.Errorf(codes.InvalidArgument, "interop: signer of suite %v for a group of suite %v", signer.suite, gc.CipherSuite)
	}
	leafOf := func(identity []byte) (mls.LeafIndex, error) {
		tree, err := groupInfoTree(gi, req.RatchetTree)
		if err != nil {
			return 0, err
		}
		var leaf mls.LeafIndex
		found := false
		tree.Leaves(func(l mls.LeafIndex, ln *mls.LeafNode) bool {
			if ln != nil && ln.Credential.Type == mls.CredentialTypeBasic && bytes.Equal(ln.Credential.Identity, identity) {
				leaf, found = l, true
				return false
			}
			return true
		})
		if !found {
			return 0, status.Errorf(codes.InvalidArgument, "interop: no member with identity %q", identity)
		}
		return leaf, nil
	}
	p, err := proposalFrom(req.Description, gc.GroupID, gc.CipherSuite, leafOf)
	if err != nil {
		return nil, err
	}
	msg, err := externalProposal(gc, mls.Sender{Type: mls.SenderTypeExternal, SenderIndex: req.SignerIndex}, p, signer.sigKey)
	if err != nil {
		return nil, err
	}
	return &pb.ProposalResponse{Proposal: msg}, nil
}

// groupInfoTree is the group's ratchet tree: the one passed out of band,
// else the GroupInfo's ratchet_tree extension. It is checked against the
// GroupInfo's tree hash (it only names leaves here, but must be the
// group's).
func groupInfoTree(gi *mls.GroupInfo, external []byte) (*mls.RatchetTree, error) {
	data := external
	if len(data) == 0 {
		e, ok := gi.Extensions.Find(mls.ExtensionRatchetTree)
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "interop: no ratchet tree in request or GroupInfo")
		}
		data = e.Data
	}
	suite, err := gi.GroupContext.CipherSuite.Suite()
	if err != nil {
		return nil, errMLS("group info", err)
	}
	tree, err := mls.UnmarshalRatchetTree(suite, data)
	if err != nil {
		return nil, errMLS("ratchet tree", err)
	}
	if !bytes.Equal(tree.TreeHash(), gi.GroupContext.TreeHash) {
		return nil, status.Error(codes.InvalidArgument, "interop: ratchet tree does not match the GroupInfo's tree hash")
	}
	return tree, nil
}
