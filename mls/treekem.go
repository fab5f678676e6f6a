package mls

import (
	"golang.org/x/crypto/cryptobyte"
)

// HPKECiphertext is an HPKE encryption of a path secret (RFC 9420, Section 7.6).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, c.KEMOutput)
	addVarBytes(b, c.Ciphertext)
}

func (c *HPKECiphertext) unmarshal(s *cryptobyte.String) bool {
	*c = HPKECiphertext{}
	return readVarBytes(s, &c.KEMOutput) && readVarBytes(s, &c.Ciphertext)
}

// UpdatePathNode carries the new public key of one node of the sender's
// filtered direct path and the path secret encrypted to each node of the
// copath child's resolution, in order (RFC 9420, Section 7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte // HPKEPublicKey
	EncryptedPathSecret []HPKECiphertext
}

func (n *UpdatePathNode) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, n.EncryptionKey)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].marshal(b)
		}
	})
}

func (n *UpdatePathNode) unmarshal(s *cryptobyte.String) bool {
	*n = UpdatePathNode{}
	return readVarBytes(s, &n.EncryptionKey) &&
		readVectorElems(s, func(s *cryptobyte.String) bool {
			var c HPKECiphertext
			if !c.unmarshal(s) {
				return false
			}
			n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
			return true
		})
}

// UpdatePath is the sender's new leaf and the new keys of its filtered
// direct path, bottom up (RFC 9420, Section 7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (p *UpdatePath) marshal(b *cryptobyte.Builder) {
	p.LeafNode.marshal(b)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range p.Nodes {
			p.Nodes[i].marshal(b)
		}
	})
}

func (p *UpdatePath) unmarshal(s *cryptobyte.String) bool {
	*p = UpdatePath{}
	return p.LeafNode.unmarshal(s) &&
		readVectorElems(s, func(s *cryptobyte.String) bool {
			var n UpdatePathNode
			if !n.unmarshal(s) {
				return false
			}
			p.Nodes = append(p.Nodes, n)
			return true
		})
}

// MarshalBinary encodes the UpdatePath.
func (p *UpdatePath) MarshalBinary() ([]byte, error) { return marshal(p.marshal) }

// UnmarshalUpdatePath decodes one UpdatePath, rejecting trailing bytes.
func UnmarshalUpdatePath(data []byte) (*UpdatePath, error) {
	p := new(UpdatePath)
	if err := unmarshalAll("UpdatePath", data, p.unmarshal); err != nil {
		return nil, err
	}
	return p, nil
}
