package main

import (
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"grove/mls"
)

// groupState is what a state_id names: one member's current epoch of a
// group and what the harness may ask of it next.
type groupState struct {
	group *mls.Group
	// prev is the epoch before group; it is kept (not erased) so that
	// application messages of the previous epoch still decrypt during the
	// grace window the package shares with it.
	prev     *mls.Group
	encrypt  bool
	identity []byte
	sigKey   *mls.SigningKey
	psks     mls.MapPSKStore
	// pending is this member's own commit awaiting HandlePendingCommit.
	pending *mls.StagedCommit
}

// advance moves the state to next, erasing the epoch before the previous.
func (st *groupState) advance(next *mls.Group) {
	if st.prev != nil {
		st.prev.Erase()
	}
	st.prev, st.group = st.group, next
	next.SetPSKStore(st.psks)
}

func (st *groupState) erase() {
	if st.pending != nil {
		st.pending.Discard()
	}
	if st.prev != nil {
		st.prev.Erase()
	}
	st.group.Erase()
}

// transaction is what a transaction_id names: a KeyPackage (and its
// private keys) waiting for a Welcome.
type transaction struct {
	bundle   *mls.KeyPackageBundle
	identity []byte
	psks     mls.MapPSKStore
}

// reinitState is a member's group closed by a ReInit commit, with the
// KeyPackage it offers for the successor group.
type reinitState struct {
	closed   *groupState
	bundle   *mls.KeyPackageBundle
	identity []byte
}

// externalSigner is a non-member that may send proposals to groups that
// list it in their external_senders extension.
type externalSigner struct {
	suite    mls.CipherSuite
	sigKey   *mls.SigningKey
	identity []byte
}

// registry hands out ids for the harness. States, transactions, reinits
// and signers share one counter so that StorePSK's
// state_or_transaction_id is never ambiguous.
type registry struct {
	mu      sync.Mutex
	next    uint32
	states  map[uint32]*groupState
	txs     map[uint32]*transaction
	reinits map[uint32]*reinitState
	signers map[uint32]*externalSigner
}

func newRegistry() *registry {
	return &registry{
		states:  map[uint32]*groupState{},
		txs:     map[uint32]*transaction{},
		reinits: map[uint32]*reinitState{},
		signers: map[uint32]*externalSigner{},
	}
}

func (r *registry) id() uint32 {
	r.next++
	return r.next
}

// errNotFound is the gRPC error for an unknown id.
func errNotFound(kind string, id uint32) error {
	return status.Errorf(codes.NotFound, "interop: no %s with id %d", kind, id)
}

// errMLS maps an mls error to a gRPC status. Nearly every mls failure is
// a rejected input (a message, KeyPackage or proposal the harness passed),
// so the code is InvalidArgument; the text carries the package's reason.
func errMLS(what string, err error) error {
	if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		return err
	}
	return status.Errorf(codes.InvalidArgument, "interop: %s: %v", what, err)
}

// keyPackageLifetime is how long the KeyPackages this client makes are
// valid, back-dated an hour against clock skew between clients.
const keyPackageLifetime = 30 * 24 * time.Hour

// newKeyPackage makes a KeyPackage for identity with a fresh signing key
// (or sigKey when given).
func newKeyPackage(cs mls.CipherSuite, identity []byte, sigKey *mls.SigningKey) (*mls.KeyPackageBundle, error) {
	s, err := cs.Suite()
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "interop: cipher suite %d: %v", cs, err)
	}
	if sigKey == nil {
		if sigKey, err = s.GenerateSigningKey(rand.Reader); err != nil {
			return nil, fmt.Errorf("interop: signing key: %w", err)
		}
	}
	now := time.Now()
	return mls.NewKeyPackage(&mls.KeyPackageParams{
		Suite:      cs,
		Credential: mls.NewBasicCredential(identity),
		SigningKey: sigKey,
		NotBefore:  now.Add(-time.Hour),
		NotAfter:   now.Add(keyPackageLifetime),
		Capabilities: mls.Capabilities{
			// Every suite, so a ReInit may move the group to any of them.
			CipherSuites: mls.CipherSuites(),
		},
		Rand: rand.Reader,
	})
}

// decodeKeyPackage accepts a KeyPackage as an MLSMessage (what the harness
// passes around) or bare.
func decodeKeyPackage(data []byte) (*mls.KeyPackage, error) {
	if m, err := mls.UnmarshalMLSMessage(data); err == nil {
		if m.WireFormat != mls.WireFormatKeyPackage || m.KeyPackage == nil {
			return nil, status.Errorf(codes.InvalidArgument, "interop: MLSMessage of wire format %d is no KeyPackage", m.WireFormat)
		}
		return m.KeyPackage, nil
	}
	kp, err := mls.UnmarshalKeyPackage(data)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "interop: key package: %v", err)
	}
	return kp, nil
}

func encodeKeyPackage(kp *mls.KeyPackage) ([]byte, error) {
	m, err := mls.NewMLSMessage(kp)
	if err != nil {
		return nil, err
	}
	return m.MarshalBinary()
}
