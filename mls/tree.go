package mls

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// ParentNode is an interior node of the ratchet tree (RFC 9420, Section 7.1).
// UnmergedLeaves is sorted in increasing order.
type ParentNode struct {
	EncryptionKey  []byte // HPKEPublicKey
	ParentHash     []byte
	UnmergedLeaves []LeafIndex
}

func (p *ParentNode) marshal(b *cryptobyte.Builder) {
	addVarBytes(b, p.EncryptionKey)
	addVarBytes(b, p.ParentHash)
	addVarVector(b, func(b *cryptobyte.Builder) {
		for _, l := range p.UnmergedLeaves {
			b.AddUint32(uint32(l))
		}
	})
}

func (p *ParentNode) unmarshal(s *cryptobyte.String) bool {
	*p = ParentNode{}
	return readVarBytes(s, &p.EncryptionKey) &&
		readVarBytes(s, &p.ParentHash) &&
		readVectorElems(s, func(s *cryptobyte.String) bool {
			var l uint32
			if !s.ReadUint32(&l) {
				return false
			}
			p.UnmergedLeaves = append(p.UnmergedLeaves, LeafIndex(l))
			return true
		})
}

// Clone returns a deep copy.
func (p *ParentNode) Clone() *ParentNode {
	return &ParentNode{
		EncryptionKey:  clone(p.EncryptionKey),
		ParentHash:     clone(p.ParentHash),
		UnmergedLeaves: cloneSlice(p.UnmergedLeaves),
	}
}

// NodeType tells leaves from parents in Node and TreeHashInput (RFC 9420,
// Section 7.8).
type NodeType uint8

// Node types, RFC 9420, Section 7.8.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// Node is a non-blank node of the ratchet tree as carried in the
// ratchet_tree extension (RFC 9420, Section 12.4.3.3): exactly one of Leaf
// and Parent is set.
type Node struct {
	Leaf   *LeafNode
	Parent *ParentNode
}

// Type returns the node's NodeType.
func (n *Node) Type() NodeType {
	if n.Leaf != nil {
		return NodeTypeLeaf
	}
	return NodeTypeParent
}

func (n *Node) marshal(b *cryptobyte.Builder) {
	switch {
	case n.Leaf != nil && n.Parent == nil:
		b.AddUint8(uint8(NodeTypeLeaf))
		n.Leaf.marshal(b)
	case n.Parent != nil && n.Leaf == nil:
		b.AddUint8(uint8(NodeTypeParent))
		n.Parent.marshal(b)
	default:
		b.SetError(fmt.Errorf("mls: node must be exactly one of leaf and parent: %w", ErrDecode))
	}
}

func (n *Node) unmarshal(s *cryptobyte.String) bool {
	*n = Node{}
	var t uint8
	if !s.ReadUint8(&t) {
		return false
	}
	switch NodeType(t) {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		return n.Leaf.unmarshal(s)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		return n.Parent.unmarshal(s)
	}
	return false
}
