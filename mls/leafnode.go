package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// LeafNodeSource says how a leaf node came to be in the tree, which decides
// whether it carries a lifetime or a parent hash and whether its signature
// is bound to a group (RFC 9420, Section 7.2).
type LeafNodeSource uint8

// Leaf node sources, RFC 9420, Section 7.2.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

func (s LeafNodeSource) String() string {
	switch s {
	case LeafNodeSourceKeyPackage:
		return "key_package"
	case LeafNodeSourceUpdate:
		return "update"
	case LeafNodeSourceCommit:
		return "commit"
	}
	return fmt.Sprintf("LeafNodeSource(%d)", uint8(s))
}

// LeafNode describes one member, signed by it (RFC 9420, Section 7.2).
// Lifetime is meaningful only for the key_package source and ParentHash only
// for the commit source.
type LeafNode struct {
	EncryptionKey []byte // HPKEPublicKey
	SignatureKey  []byte // SignaturePublicKey
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime // key_package
	ParentHash    []byte   // commit
	Extensions    Extensions
	Signature     []byte
}

// marshalContent writes the fields shared by LeafNode and LeafNodeTBS.
func (ln *LeafNode) marshalContent(b *cryptobyte.Builder) {
	addVarBytes(b, ln.EncryptionKey)
	addVarBytes(b, ln.SignatureKey)
	ln.Credential.marshal(b)
	ln.Capabilities.marshal(b)
	b.AddUint8(uint8(ln.Source))
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime.marshal(b)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		addVarBytes(b, ln.ParentHash)
	default:
		b.SetError(fmt.Errorf("mls: leaf node source %d: %w", ln.Source, ErrDecode))
	}
	ln.Extensions.marshal(b)
}

func (ln *LeafNode) marshal(b *cryptobyte.Builder) {
	ln.marshalContent(b)
	addVarBytes(b, ln.Signature)
}

func (ln *LeafNode) unmarshal(s *cryptobyte.String) bool {
	*ln = LeafNode{}
	var src uint8
	if !readVarBytes(s, &ln.EncryptionKey) ||
		!readVarBytes(s, &ln.SignatureKey) ||
		!ln.Credential.unmarshal(s) ||
		!ln.Capabilities.unmarshal(s) ||
		!s.ReadUint8(&src) {
		return false
	}
	ln.Source = LeafNodeSource(src)
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		if !ln.Lifetime.unmarshal(s) {
			return false
		}
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		if !readVarBytes(s, &ln.ParentHash) {
			return false
		}
	default:
		return false
	}
	return ln.Extensions.unmarshal(s) && readVarBytes(s, &ln.Signature)
}

// MarshalBinary encodes the LeafNode.
func (ln *LeafNode) MarshalBinary() ([]byte, error) { return marshal(ln.marshal) }

// UnmarshalLeafNode decodes one LeafNode, rejecting trailing bytes.
func UnmarshalLeafNode(data []byte) (*LeafNode, error) {
	ln := new(LeafNode)
	if err := unmarshalAll("LeafNode", data, ln.unmarshal); err != nil {
		return nil, err
	}
	return ln, nil
}

// Clone returns a deep copy, so a pending change can edit it freely.
func (ln *LeafNode) Clone() *LeafNode {
	c := *ln
	c.EncryptionKey = clone(ln.EncryptionKey)
	c.SignatureKey = clone(ln.SignatureKey)
	c.Credential.Identity = clone(ln.Credential.Identity)
	c.Credential.Certificates = make([]Certificate, len(ln.Credential.Certificates))
	for i, cert := range ln.Credential.Certificates {
		c.Credential.Certificates[i].Data = clone(cert.Data)
	}
	if ln.Credential.Certificates == nil {
		c.Credential.Certificates = nil
	}
	c.Capabilities = Capabilities{
		Versions:     cloneSlice(ln.Capabilities.Versions),
		CipherSuites: cloneSlice(ln.Capabilities.CipherSuites),
		Extensions:   cloneSlice(ln.Capabilities.Extensions),
		Proposals:    cloneSlice(ln.Capabilities.Proposals),
		Credentials:  cloneSlice(ln.Capabilities.Credentials),
	}
	c.ParentHash = clone(ln.ParentHash)
	if ln.Extensions != nil {
		c.Extensions = make(Extensions, len(ln.Extensions))
		for i, e := range ln.Extensions {
			c.Extensions[i] = Extension{Type: e.Type, Data: clone(e.Data)}
		}
	}
	c.Signature = clone(ln.Signature)
	return &c
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append([]T{}, s...)
}

// tbs encodes LeafNodeTBS (RFC 9420, Section 7.2): the content, then for the
// update and commit sources the group ID and leaf index, which bind the
// signature to one position in one group.
func (ln *LeafNode) tbs(groupID []byte, leaf LeafIndex) ([]byte, error) {
	return marshal(func(b *cryptobyte.Builder) {
		ln.marshalContent(b)
		switch ln.Source {
		case LeafNodeSourceUpdate, LeafNodeSourceCommit:
			addVarBytes(b, groupID)
			b.AddUint32(uint32(leaf))
		}
	})
}

const leafNodeTBSLabel = "LeafNodeTBS"

// Sign sets the signature over LeafNodeTBS. groupID and leaf are ignored for
// the key_package source.
func (ln *LeafNode) Sign(key *SigningKey, groupID []byte, leaf LeafIndex) error {
	tbs, err := ln.tbs(groupID, leaf)
	if err != nil {
		return fmt.Errorf("mls: signing leaf node: %w", err)
	}
	sig, err := key.SignWithLabel(leafNodeTBSLabel, tbs)
	if err != nil {
		return fmt.Errorf("mls: signing leaf node: %w", err)
	}
	ln.Signature = sig
	return nil
}

// VerifySignature checks the signature with the leaf's own signature key
// (RFC 9420, Section 7.3). groupID and leaf are the signing context for the
// update and commit sources.
func (ln *LeafNode) VerifySignature(s *Suite, groupID []byte, leaf LeafIndex) error {
	tbs, err := ln.tbs(groupID, leaf)
	if err != nil {
		return fmt.Errorf("mls: leaf node: %w", err)
	}
	if err := s.VerifyWithLabel(ln.SignatureKey, leafNodeTBSLabel, tbs, ln.Signature); err != nil {
		return fmt.Errorf("mls: leaf node signature: %w", err)
	}
	return nil
}
