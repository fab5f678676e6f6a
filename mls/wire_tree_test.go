package mls

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// sampleLeafNode returns a signed leaf node for suite 1 with every optional
// shape exercised by source.
func sampleLeafNode(t testing.TB, source LeafNodeSource) *LeafNode {
	t.Helper()
	s, err := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.GenerateSigningKey(&fixedRand{})
	if err != nil {
		t.Fatal(err)
	}
	hk, err := s.GenerateHPKEKeyPair(&fixedRand{ctr: 9})
	if err != nil {
		t.Fatal(err)
	}
	ln := &LeafNode{
		EncryptionKey: hk.PublicKey(),
		SignatureKey:  sig.PublicKey(),
		Credential:    NewBasicCredential([]byte("alice")),
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{ProtocolVersionMLS10},
			CipherSuites: []CipherSuite{s.ID()},
			Extensions:   []ExtensionType{0x0a0a, 0xf001},
			Proposals:    []ProposalType{0x1a1a},
			Credentials:  []CredentialType{CredentialTypeBasic, CredentialTypeX509},
		},
		Source:     source,
		Extensions: Extensions{{Type: 0xf001, Data: []byte{1, 2}}},
	}
	switch source {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime = Lifetime{NotBefore: 10, NotAfter: 1 << 40}
	case LeafNodeSourceCommit:
		ln.ParentHash = bytes.Repeat([]byte{7}, 32)
	}
	if err := ln.Sign(sig, []byte("group"), 3); err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestLeafNodeSignatureContext(t *testing.T) {
	s, _ := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.Suite()
	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		ln := sampleLeafNode(t, src)
		if err := ln.VerifySignature(s, []byte("group"), 3); err != nil {
			t.Fatalf("%v: %v", src, err)
		}
		errOther := ln.VerifySignature(s, []byte("other"), 3)
		errLeaf := ln.VerifySignature(s, []byte("group"), 4)
		if src == LeafNodeSourceKeyPackage {
			// A KeyPackage leaf is signed before any group exists.
			if errOther != nil || errLeaf != nil {
				t.Fatalf("key_package leaf bound to group context: %v %v", errOther, errLeaf)
			}
			continue
		}
		if !errors.Is(errOther, ErrInvalidSignature) || !errors.Is(errLeaf, ErrInvalidSignature) {
			t.Fatalf("%v leaf verified in the wrong context: %v %v", src, errOther, errLeaf)
		}
	}
}

func TestCredentialX509RoundTrip(t *testing.T) {
	c := Credential{Type: CredentialTypeX509, Certificates: []Certificate{{Data: []byte{1}}, {Data: []byte{2, 3}}}}
	enc, err := marshal(c.marshal)
	if err != nil {
		t.Fatal(err)
	}
	var got Credential
	if err := unmarshalAll("Credential", enc, got.unmarshal); err != nil || !got.Equal(&c) {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	// Unknown credential types have no parseable body.
	if err := unmarshalAll("Credential", []byte{0x0a, 0x0a, 0x00}, got.unmarshal); !errors.Is(err, ErrDecode) {
		t.Fatalf("GREASE credential type accepted: %v", err)
	}
}

func TestProposalTypeIsDefault(t *testing.T) {
	for pt := ProposalType(0); pt < 10; pt++ {
		if got, want := pt.IsDefault(), pt >= 1 && pt <= 7; got != want {
			t.Errorf("%d.IsDefault() = %v", pt, got)
		}
	}
}

// roundTrip decodes data with dec and, if it decodes, checks that encoding
// reproduces the input exactly.
func roundTrip(t *testing.T, what string, data []byte, dec func(*cryptobyte.String) bool, enc func(*cryptobyte.Builder)) {
	if unmarshalAll(what, data, dec) != nil {
		return
	}
	out, err := marshal(enc)
	if err != nil {
		t.Fatalf("%s decoded but does not encode: %v", what, err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("%s re-encodes differently:\n in %x\nout %x", what, data, out)
	}
}

func FuzzLeafNode(f *testing.F) {
	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		enc, err := sampleLeafNode(f, src).MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ln LeafNode
		roundTrip(t, "LeafNode", data, ln.unmarshal, ln.marshal)
		if ln2, err := UnmarshalLeafNode(data); err == nil {
			c := ln2.Clone()
			a, _ := ln2.MarshalBinary()
			b, _ := c.MarshalBinary()
			if !bytes.Equal(a, b) {
				t.Fatal("Clone changed the encoding")
			}
		}
	})
}

func FuzzNode(f *testing.F) {
	leaf, _ := marshal((&Node{Leaf: sampleLeafNode(f, LeafNodeSourceCommit)}).marshal)
	par, _ := marshal((&Node{Parent: &ParentNode{EncryptionKey: []byte{1, 2}, ParentHash: []byte{3}, UnmergedLeaves: []LeafIndex{1, 5}}}).marshal)
	f.Add(leaf)
	f.Add(par)
	f.Fuzz(func(t *testing.T, data []byte) {
		var n Node
		roundTrip(t, "Node", data, n.unmarshal, n.marshal)
	})
}

func FuzzUpdatePath(f *testing.F) {
	p := &UpdatePath{
		LeafNode: *sampleLeafNode(f, LeafNodeSourceCommit),
		Nodes: []UpdatePathNode{
			{EncryptionKey: []byte{1}, EncryptedPathSecret: []HPKECiphertext{{KEMOutput: []byte{2}, Ciphertext: []byte{3}}}},
			{EncryptionKey: []byte{4}},
		},
	}
	enc, err := p.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p UpdatePath
		roundTrip(t, "UpdatePath", data, p.unmarshal, p.marshal)
	})
}

func FuzzCapabilities(f *testing.F) {
	c := sampleLeafNode(f, LeafNodeSourceUpdate).Capabilities
	enc, _ := marshal(c.marshal)
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Capabilities
		roundTrip(t, "Capabilities", data, c.unmarshal, c.marshal)
	})
}

func FuzzRequiredCapabilities(f *testing.F) {
	r := RequiredCapabilities{ExtensionTypes: []ExtensionType{0xf000}, ProposalTypes: []ProposalType{8}, CredentialTypes: []CredentialType{1}}
	enc, _ := r.MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r RequiredCapabilities
		roundTrip(t, "RequiredCapabilities", data, r.unmarshal, r.marshal)
	})
}
